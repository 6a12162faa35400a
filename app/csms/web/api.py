"""The REST API (`/api/v1`), health probes, and the OpenAPI docs at `/docs`."""

import hmac
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

import csms
from csms.protocol.errors import (
    CallErrorReceived,
    CallTimeout,
    NotConnected,
    PayloadInvalid,
    ResponseInvalid,
)
from csms.protocol.session import Session

if TYPE_CHECKING:
    from csms.web.app import CsmsApp


class CallRequest(BaseModel):
    action: str = Field(description="OCPP action, e.g. Reset or GetVariables",
                        examples=["Reset"])
    payload: dict[str, Any] = Field(default_factory=dict,
                                    description="the CALL payload, checked against the schema")
    timeout: float | None = Field(default=None, gt=0, le=300,
                                  description="seconds to wait for the station's answer")


class CallResponse(BaseModel):
    action: str
    result: dict[str, Any]


class ErrorBody(BaseModel):
    detail: Any


def build_api(app: "CsmsApp") -> FastAPI:
    api = FastAPI(title="csms", version=csms.__version__,
                  description="OCPP central system: stations and calls to them.")

    def authorized(request: Request) -> None:
        token = app.settings.api_token
        if token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "bearer token required",
                                headers={"WWW-Authenticate": "Bearer"})

    async def view(session: Session) -> dict[str, Any]:
        state = await app.services.stations.get(session.station_id)
        body: dict[str, Any] = {
            "id": session.station_id,
            "connected": True,
            "version": session.version,
            "connectedSince": session.connected_at,
            "lastMessage": session.last_message_at,
        }
        body.update(state.view() if state else {"boot": None, "connectors": {}})
        return body

    @api.get("/healthz", tags=["probes"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz", tags=["probes"], responses={503: {"model": ErrorBody}})
    def readyz() -> JSONResponse:
        if app.ready and not app.draining:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready"}, status_code=503)

    @api.get("/api/v1/stations", tags=["stations"], dependencies=[Depends(authorized)])
    async def list_stations() -> list[dict[str, Any]]:
        """Stations connected to this process."""
        return [await view(s) for s in app.services.connections.sessions()]

    @api.get("/api/v1/stations/{station_id}", tags=["stations"],
             dependencies=[Depends(authorized)], responses={404: {"model": ErrorBody}})
    async def get_station(station_id: str) -> dict[str, Any]:
        session = app.services.connections.get(station_id)
        if session is not None:
            return await view(session)
        entry = await app.services.registry.get(station_id)
        state = await app.services.stations.get(station_id)
        if entry is None and state is None:
            raise HTTPException(404, f"station {station_id!r} is unknown")
        body: dict[str, Any] = {"id": station_id, "connected": False}
        body.update(state.view() if state else {"boot": None, "connectors": {}})
        return body

    @api.post(
        "/api/v1/stations/{station_id}/calls", tags=["stations"],
        dependencies=[Depends(authorized)],
        responses={404: {"model": ErrorBody, "description": "station not connected"},
                   422: {"model": ErrorBody, "description": "payload fails the OCPP schema"},
                   502: {"model": ErrorBody, "description": "station answered CALLERROR"},
                   504: {"model": ErrorBody, "description": "station did not answer in time"}},
    )
    async def call_station(station_id: str, body: CallRequest) -> CallResponse:
        """Send a CALL to a connected station and return its CALLRESULT payload."""
        session = app.services.connections.get(station_id)
        if session is None:
            raise HTTPException(404, f"station {station_id!r} is not connected")
        try:
            result = await session.call(body.action, body.payload, body.timeout)
        except PayloadInvalid as exc:
            raise HTTPException(422, {"code": exc.error.code.value,
                                      "description": exc.error.description,
                                      **exc.error.details}) from None
        except CallErrorReceived as exc:
            raise HTTPException(502, {"code": exc.code, "description": exc.description,
                                      "details": exc.details}) from None
        except ResponseInvalid as exc:
            raise HTTPException(502, {"code": "ResponseInvalid",
                                      "description": exc.error.description}) from None
        except CallTimeout as exc:
            raise HTTPException(504, str(exc)) from None
        except NotConnected as exc:
            raise HTTPException(404, str(exc)) from None
        return CallResponse(action=body.action, result=result)

    return api
