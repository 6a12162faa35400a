"""Authorization: a token is Accepted when the station accepts all or lists it."""

from typing import Any

from csms.protocol.router import Context, Router
from csms.protocol.versions import V16
from csms.services import Services


def token_status(context: Context, token: str) -> str:
    station = context.station
    if station is not None and (station.accept_all or token in station.id_tokens):
        return "Accepted"
    return "Invalid"


def token_of(payload: dict[str, Any], version: str) -> str | None:
    if version == V16:
        return payload.get("idTag")
    token = payload.get("idToken")
    return token["idToken"] if token else None


def id_info(context: Context, token: str) -> dict[str, Any]:
    key = "idTagInfo" if context.version == V16 else "idTokenInfo"
    return {key: {"status": token_status(context, token)}}


def router(services: Services) -> Router:
    r = Router()

    @r.on("Authorize")
    def authorize(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        token = token_of(payload, context.version)
        assert token is not None  # required by the schema of every version
        return id_info(context, token)

    return r
