"""Provisioning: BootNotification, NotifyReport, and pushing the desired configuration.

After an accepted boot the station's `spec.configuration` is pushed: OCPP 1.6 gets one
ChangeConfiguration per key, OCPP 2.x one SetVariables with `Component.Variable` keys. The
outcome of each key (Accepted, Rejected, RebootRequired, ... or the failure) is recorded.
"""

import logging
from typing import Any

from csms.clock import now
from csms.observability.counters import bump
from csms.protocol.errors import OcppException
from csms.protocol.router import Context, Router
from csms.protocol.versions import V16
from csms.services import Services
from csms.state.admission import jittered

logger = logging.getLogger("csms.provisioning")
SET_VARIABLES_BATCH = 16  # stay under common ItemsPerMessageSetVariables limits


def boot_info(payload: dict[str, Any], version: str) -> dict[str, Any]:
    if version == V16:
        info = {
            "vendor": payload["chargePointVendor"],
            "model": payload["chargePointModel"],
            "firmwareVersion": payload.get("firmwareVersion"),
            "serialNumber": payload.get("chargePointSerialNumber"),
        }
    else:
        station = payload["chargingStation"]
        info = {
            "vendor": station["vendorName"],
            "model": station["model"],
            "firmwareVersion": station.get("firmwareVersion"),
            "serialNumber": station.get("serialNumber"),
            "reason": payload.get("reason"),
        }
    return {k: v for k, v in info.items() if v is not None}


def variable_key(item: dict[str, Any]) -> str:
    """The `Component.Variable` key of a 2.x SetVariables/GetVariables data or result item."""
    return f"{item['component']['name']}.{item['variable']['name']}"


def split_key(key: str) -> tuple[str, str]:
    component, _, variable = key.partition(".")
    if not component or not variable:
        raise ValueError(f"configuration key {key!r} is not Component.Variable")
    return component, variable


async def push_configuration(services: Services, context: Context, desired: dict[str, str]) -> None:
    record = services.stations.record_configuration
    sid = context.station_id
    if context.version == V16:
        for key, value in desired.items():
            try:
                result = await context.call("ChangeConfiguration", {"key": key, "value": value})
                outcome = str(result["status"])
            except OcppException as exc:
                outcome = f"Failed: {exc}"
            await record(sid, key, outcome)
        return
    items = list(desired.items())
    for start in range(0, len(items), SET_VARIABLES_BATCH):
        batch = items[start:start + SET_VARIABLES_BATCH]
        data, keys = [], []
        for key, value in batch:
            try:
                component, variable = split_key(key)
            except ValueError as exc:
                await record(sid, key, f"Failed: {exc}")
                continue
            keys.append(key)
            data.append({"attributeValue": value, "component": {"name": component},
                         "variable": {"name": variable}})
        if not data:
            continue
        try:
            result = await context.call("SetVariables", {"setVariableData": data})
        except OcppException as exc:
            for key in keys:
                await record(sid, key, f"Failed: {exc}")
            continue
        for item in result["setVariableResult"]:
            await record(sid, variable_key(item), str(item["attributeStatus"]))


def router(services: Services) -> Router:
    r = Router()

    @r.on("BootNotification")
    async def boot_notification(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        if not services.boots.take():
            # Overloaded (a reconnect storm): come back later, not all at the same moment.
            context.log.info("boot deferred: Pending")
            bump("csms_boots_pending")
            return {"status": "Pending", "currentTime": now(),
                    "interval": jittered(services.pending_interval)}
        info = boot_info(payload, context.version)
        await services.stations.record_boot(context.station_id, info)
        interval = context.station.heartbeat_interval if context.station else 300
        logger.info("%s boot accepted: %s", context.station_id, info)
        return {"status": "Accepted", "currentTime": now(), "interval": interval}

    @r.after("BootNotification")
    async def configure(payload: dict[str, Any], response: dict[str, Any],
                        context: Context) -> None:
        if response.get("status") != "Accepted" or context.station is None:
            return
        desired = dict(context.station.configuration)
        if desired:
            await push_configuration(services, context, desired)

    @r.on("NotifyReport")
    def notify_report(payload: dict[str, Any], context: Context) -> None:
        return None

    return r
