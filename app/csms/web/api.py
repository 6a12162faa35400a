"""The REST API (`/api/v1`), health probes, and the OpenAPI docs at `/docs`."""

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

import csms
from csms.clock import rfc3339
from csms.protocol import schemas
from csms.protocol.errors import ErrorCode, RpcError
from csms.protocol.session import Session
from csms.protocol.versions import VERSIONS
from csms.state.commands import Command, QueueFull
from csms.state.errors import Unavailable
from csms.web.transactions_api import transactions_router

if TYPE_CHECKING:
    from csms.web.app import CsmsApp


def callable_actions() -> list[Any]:
    """Every action that travels as a CALL in some OCPP version: what `action` may name."""
    return sorted({a for v in VERSIONS for a in schemas.actions(v) - schemas.send_only(v)})


class CallRequest(BaseModel):
    action: str = Field(description="OCPP action, e.g. Reset or GetVariables; its payload must "
                        "pass the action's schema in the station's OCPP version",
                        examples=["Reset"], json_schema_extra={"enum": callable_actions()})
    payload: dict[str, Any] = Field(default_factory=dict,
                                    description="the CALL payload, checked against the schema")
    timeout: float | None = Field(default=None, gt=0, le=300,
                                  description="seconds to wait for the station's answer")
    queue: bool = Field(default=False, description=(
        "keep the call in the station's durable queue and answer 202 at once; it is "
        "delivered in order as soon as the station is connected"))
    ttl: float = Field(default=86_400, gt=0, le=30 * 86_400, description=(
        "with queue: seconds after which a call not yet sent expires"))


class CallResponse(BaseModel):
    action: str
    result: dict[str, Any]


class CommandView(BaseModel):
    id: str
    station: str
    action: str
    payload: dict[str, Any]
    status: str = Field(description="queued, sent, answered, expired or failed")
    createdAt: str = Field(description="RFC 3339, UTC, as OCPP writes times")
    expiresAt: str
    updatedAt: str
    result: dict[str, Any] | None = Field(default=None, description="when answered")
    error: dict[str, Any] | None = Field(default=None, description="when failed")


class ErrorBody(BaseModel):
    detail: Any


class Status(BaseModel):
    status: str


class StationView(BaseModel):
    """A station as csms knows it: its connection, when connected, and its last state."""

    id: str
    connected: bool
    pod: str | None = Field(default=None, description="the process holding its connection")
    version: str | None = Field(
        default=None, description="OCPP version of its current (or last) connection")
    connectedSince: str | None = Field(default=None, description="RFC 3339, UTC")
    lastMessage: str | None = Field(default=None, description="RFC 3339, UTC")
    boot: dict[str, Any] | None = Field(default=None, description="its last BootNotification")
    bootedAt: str | None = Field(default=None, description="RFC 3339, UTC")
    connectors: dict[Any, Any] = Field(default_factory=dict)
    lastMeterValues: Any = None
    configuration: dict[str, Any] = Field(default_factory=dict)
    transactions: dict[Any, Any] = Field(
        default_factory=dict, description="its active transactions (the ledger's records)")


# Answers every /api/v1 operation may give besides its own.
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "the body is not JSON"},
    401: {"model": ErrorBody, "description": "no valid bearer token (when tokens are set)"},
    422: {"model": ErrorBody, "description": "a parameter or the body breaks its schema"},
}


UNAVAILABLE = {"model": ErrorBody, "description": "shared state (Redis) unreachable"}


def documented(**responses: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    return {**COMMON_ERRORS, **{int(code[1:]): r for code, r in responses.items()}}


def valid_for_some(action: str, payload: dict[str, Any], versions: Iterable[str]) -> None:
    """A queued call must fit at least one version the station may use (checked again, for
    the version it connects with, when it is sent)."""
    first: RpcError | None = None
    for version in versions:
        if action not in schemas.actions(version) or action in schemas.send_only(version):
            continue
        try:
            schemas.request(version, action).check(payload)
            return
        except RpcError as exc:
            first = first or exc
    if first is None:
        raise HTTPException(422, {"code": ErrorCode.NOT_IMPLEMENTED.value, "description":
                                  f"{action} is not a CALL of OCPP {', '.join(versions)}"})
    raise HTTPException(422, {"code": first.code.value, "description": first.description,
                              **first.details})


def build_api(app: "CsmsApp") -> FastAPI:
    # /docs from the package's own Swagger UI: the CDN FastAPI uses by default is out of
    # reach on many clusters and offline machines, and /docs would be blank there.
    api = FastAPI(title="csms", version=csms.__version__, docs_url=None, redoc_url=None,
                  description="OCPP central system: stations and calls to them.")
    from swagger_ui_bundle import swagger_ui_path

    api.mount("/docs/static", StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    @api.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="csms API",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon-32x32.png",
            oauth2_redirect_url="/docs/oauth2-redirect")

    @api.get("/docs/oauth2-redirect", include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    bearer = Security(HTTPBearer(auto_error=False,
                                 description="CSMS_API_TOKEN or CSMS_API_TOKEN_FILE"))

    def authorized(request: Request, _: HTTPAuthorizationCredentials | None = bearer) -> None:
        # The scheme documents the token in /docs; the check reads the header itself, so a
        # malformed one is a 401 too, not FastAPI's 403.
        tokens = app.tokens
        if tokens.required and not tokens.accepts_header(request.headers.get("authorization")):
            raise HTTPException(401, "a valid bearer token is required",
                                headers={"WWW-Authenticate": "Bearer"})

    async def transactions(station_id: str) -> dict[str, Any]:
        return {tx.transaction_id: tx.view()
                for tx in await app.services.ledger.active(station_id)}

    async def view(session: Session) -> dict[str, Any]:
        state = await app.services.stations.get(session.station_id)
        body: dict[str, Any] = {"id": session.station_id}
        body.update(state.view() if state else {"boot": None, "connectors": {}})
        body["transactions"] = await transactions(session.station_id)
        body.update({
            "connected": True,
            "pod": app.services.router.owner_id,
            "version": session.version,
            "connectedSince": rfc3339(session.connected_at),
            "lastMessage": rfc3339(session.last_message_at),
        })
        return body

    @api.get("/healthz", tags=["probes"], response_model=Status)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz", tags=["probes"], response_model=Status,
             responses={503: {"model": Status, "description": "starting or draining"}})
    def readyz() -> JSONResponse:
        if app.ready and not app.draining:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready"}, status_code=503)

    @api.get("/api/v1/stations", tags=["stations"], dependencies=[Depends(authorized)],
             response_model=list[StationView], responses=documented())
    async def list_stations() -> list[dict[str, Any]]:
        """Stations connected to this process; in gateway mode, every station connected
        through a gateway."""
        if app.gateway is not None:
            found = [await far_view(sid) for sid in await app.gateway.stations()]
            return [v for v in found if v is not None]
        return [await view(s) for s in app.services.connections.sessions()]

    @api.get("/api/v1/stations/{station_id}", tags=["stations"], response_model=StationView,
             dependencies=[Depends(authorized)],
             responses=documented(_404={"model": ErrorBody, "description": "unknown station"},
                                  _503=UNAVAILABLE))
    async def get_station(station_id: str) -> dict[str, Any]:
        session = app.services.connections.get(station_id)
        if session is not None:
            return await view(session)
        found = await far_view(station_id)
        if found is None:
            raise HTTPException(404, f"station {station_id!r} is unknown")
        return found

    async def far_view(station_id: str) -> dict[str, Any] | None:
        """A station this process holds no socket of: connected elsewhere in the cluster,
        through a gateway, or not at all; None when csms knows nothing of it."""
        entry = await app.services.registry.get(station_id)
        state = await app.services.stations.get(station_id)
        if app.gateway is not None:
            where = await app.gateway.describe(station_id)
        else:
            owner = await app.services.router.owner(station_id)
            where = None if owner is None else {"connected": True, "pod": owner}
        if entry is None and state is None and where is None:
            return None
        body: dict[str, Any] = {"id": station_id, "connected": False}
        body.update(state.view() if state else {"boot": None, "connectors": {}})
        body.update(where or {})
        body["transactions"] = await transactions(station_id)
        return body

    @api.post(
        "/api/v1/stations/{station_id}/calls", tags=["stations"],
        dependencies=[Depends(authorized)], response_model=CallResponse,
        responses=documented(
            _202={"model": CommandView, "description": "queued (with queue: true)"},
            _404={"model": ErrorBody, "description": "station not connected, or its "
                  "connection closed before it answered"},
            _422={"model": ErrorBody, "description": "the body breaks its schema, or the "
                  "payload the action's OCPP schema"},
            _429={"model": ErrorBody, "description": "the station's queue is full"},
            _502={"model": ErrorBody,
                  "description": "station answered CALLERROR or an invalid CALLRESULT"},
            _503={"model": ErrorBody, "description": "the pod holding the station, or "
                  "Redis, is unreachable"},
            _504={"model": ErrorBody, "description": "station did not answer in time"}),
    )
    async def call_station(station_id: str, body: CallRequest) -> Any:
        """Send a CALL to a station, wherever it is connected, and return its CALLRESULT
        payload; with `queue: true`, queue it for delivery when the station is connected."""
        if body.queue:
            return await enqueue(station_id, body)
        outcome = await app.services.router.call(station_id, body.action, body.payload,
                                                 body.timeout)
        if not outcome.ok:
            raise HTTPException(outcome.status, outcome.body)
        return CallResponse(action=body.action, result=outcome.body)

    async def enqueue(station_id: str, body: CallRequest) -> JSONResponse:
        entry = await app.services.entry(station_id)
        if entry is None:
            raise HTTPException(404, f"station {station_id!r} is not registered")
        valid_for_some(body.action, body.payload, entry.versions or VERSIONS)
        command = Command.new(station_id, body.action, body.payload, body.ttl)
        try:
            await app.services.commands.add(command)
        except QueueFull as exc:
            raise HTTPException(429, str(exc)) from None
        await app.services.router.notify(station_id)
        return JSONResponse(command.view(), status_code=202,
                            headers={"location": f"/api/v1/commands/{command.id}"})

    @api.get("/api/v1/commands/{command_id}", tags=["commands"], response_model=CommandView,
             dependencies=[Depends(authorized)],
             responses=documented(_404={"model": ErrorBody, "description": "no such command"},
                                  _503=UNAVAILABLE))
    async def get_command(command_id: str) -> dict[str, Any]:
        """A queued call: queued, sent, answered (with the result), expired or failed."""
        command = await app.services.commands.get(command_id)
        if command is None:
            raise HTTPException(404, f"no command {command_id!r}")
        return command.view()

    api.include_router(transactions_router(
        lambda: app.services.ledger, authorized, documented(_503=UNAVAILABLE)))

    @api.exception_handler(Unavailable)
    async def unavailable(request: Request, exc: Unavailable) -> Response:
        return JSONResponse({"detail": f"shared state unreachable: {exc}"}, status_code=503)

    return api
