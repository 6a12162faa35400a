"""The README's examples stay true: the manifests load and the developer example serves."""

from pathlib import Path
from typing import Any

import orjson

from csms.state.registry import load_stations

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_the_example_stations_load_with_their_secrets() -> None:
    entries = {e.station_id: e for e in load_stations(EXAMPLES / "stations")}
    assert {"cp-0001", "cs-0002", "DEPOT-BAY-7", "cp-retired"} <= set(entries)
    assert entries["cs-0002"].password_hash is not None


async def test_the_developer_example_answers_with_its_own_handlers(make_session: Any) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("example_app", EXAMPLES / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table = module.app.tables["2.0.1"]
    from csms.protocol.session import Session
    from tests.conftest import Wire

    wire = Wire()
    session = Session("CS-9", "2.0.1", table, wire.send)
    session.receive(orjson.dumps([2, "a", "Authorize",
                                  {"idToken": {"idToken": "FLEET-002", "type": "ISO14443"}}]))
    session.receive(orjson.dumps([2, "d", "DataTransfer", {"vendorId": "acme"}]))
    session.receive(orjson.dumps([2, "h", "Heartbeat", {}]))  # the central system's own
    frames = await wire.wait_for(3)
    assert frames[0] == [3, "a", {"idTokenInfo": {"status": "Accepted"}}]
    assert frames[1] == [3, "d", {"status": "Accepted", "data": "hello CS-9"}]
    assert frames[2][2]["currentTime"].endswith("Z")
