"""The REST API under property-based testing: schemathesis generates requests for every
operation of the project's own OpenAPI document and sends them to a real `csms serve`
with a connected station. Every response must be documented (status, content type,
headers, body schema), none may be a 500, bad input must be refused and good input
accepted, and the token must be enforced."""

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis import checks

from csms.config import Settings
from csms.web.app import create_app
from tests.e2e.conftest import STATIONS, Server, start_server, stop_server
from tests.e2e.stations import connected

TOKEN = "schemathesis-token-0123456789"
# The document the server serves, built from the app itself: no server needed to collect.
schema = schemathesis.openapi.from_dict(
    create_app(settings=Settings(api_token=TOKEN)).api.openapi())


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with a 1.6 station connected and answering, so calls can reach it."""
    server = start_server(tmp_path_factory.mktemp("api"), STATIONS, "--api-token", TOKEN,
                          "--call-timeout", "2")
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()

    async def station() -> None:
        async with connected(server.ws, "cp16", "1.6"):
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(station(),), daemon=True)
    thread.start()
    assert ready.wait(10), "the station connected"
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
        stop_server(server)
    assert "Traceback" not in server.output()


@schema.parametrize()
@hypothesis.settings(max_examples=150, deadline=None,
                     suppress_health_check=list(hypothesis.HealthCheck))
def test_every_operation_keeps_its_documented_promises(case: Any, live: Server) -> None:
    with contextlib.suppress(KeyError):
        # Most generated ids name nobody; make some name the connected station.
        if case.path_parameters["station_id"].startswith(("c", "C")):
            case.path_parameters["station_id"] = "cp16"
    # Whether a call's payload is accepted depends on the action's OCPP schema in the version
    # the station speaks, which no OpenAPI document can tie to the request: 422 is the
    # documented answer, so "valid data must be accepted" cannot hold for calls.
    # Likewise a page cursor is opaque: only one this API made is valid, others get 422.
    calls = case.operation.path.endswith("/calls")
    opaque = calls or "cursor" in (case.query or {})
    excluded = [checks.positive_data_acceptance] if opaque else []
    # A call's 502, 503 and 504 are the station's doing (a CALLERROR, a lost pod, silence),
    # each documented: only a 500 would be ours.
    if calls:
        excluded.append(checks.not_a_server_error)
    # An optional query parameter turned into an empty object or array goes out as nothing
    # at all: the request on the wire is valid, so its "rejection" cannot be asked for.
    if any(value in ({}, []) for value in (case.query or {}).values()):
        excluded.append(checks.negative_data_rejection)
    response = case.call_and_validate(base_url=live.http,
                                      headers={"Authorization": f"Bearer {TOKEN}"},
                                      excluded_checks=excluded)
    assert response.status_code != 500, response.text


def test_the_document_covers_every_route() -> None:
    paths = set(schema.raw_schema["paths"])
    assert paths == {"/healthz", "/readyz", "/api/v1/stations", "/api/v1/stations/{station_id}",
                     "/api/v1/stations/{station_id}/calls", "/api/v1/commands/{command_id}",
                     "/api/v1/transactions", "/api/v1/exports/transactions",
                     "/api/v1/transactions/{key}"}
