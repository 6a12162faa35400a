"""Availability: Heartbeat and StatusNotification."""

from typing import Any

from csms.clock import now
from csms.protocol.router import Context, Router
from csms.protocol.versions import V16
from csms.services import Services


def connector_key(payload: dict[str, Any], version: str) -> tuple[str, dict[str, Any]]:
    if version == V16:
        key = str(payload["connectorId"])
        status = {"status": payload["status"], "errorCode": payload["errorCode"]}
    else:
        key = f"{payload['evseId']}/{payload['connectorId']}"
        status = {"status": payload["connectorStatus"]}
    status["timestamp"] = payload.get("timestamp") or now()
    return key, status


def router(services: Services) -> Router:
    r = Router()

    @r.on("Heartbeat")
    def heartbeat(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        services.presence.seen(context.station_id)
        return {"currentTime": now()}

    @r.on("StatusNotification")
    async def status_notification(payload: dict[str, Any], context: Context) -> None:
        key, status = connector_key(payload, context.version)
        await services.stations.record_connector(context.station_id, key, status)

    return r
