"""What a simulated station does when the central system calls it, per OCPP version.

The simulator runs the same `Session` as the server, so every CALL it receives is checked
against the official schema and every answer it gives is too.
"""

import asyncio
from typing import Any

from csms.handlers.provisioning import variable_key
from csms.protocol.router import Context, Router
from csms.protocol.versions import V16

ACCEPTED = {"status": "Accepted"}


class StationModel:
    """The state a simulated station keeps: configuration, and charging requests."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.configuration: dict[str, str] = {
            "HeartbeatInterval": "300", "MeterValueSampleInterval": "10",
        }
        self.commands: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()


def router(model: StationModel) -> Router:
    r = Router()

    def accept(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        return ACCEPTED

    @r.on("Reset")
    def reset(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        model.commands.put_nowait(("reset", payload))  # reboots once it has answered
        return ACCEPTED

    for action in ("ChangeAvailability", "ClearCache", "SetChargingProfile",
                   "ClearChargingProfile", "UpdateFirmware", "CancelReservation",
                   "GetBaseReport", "SetNetworkProfile"):
        r.on(action)(accept)

    @r.on("UnlockConnector")
    def unlock(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        return {"status": "Unlocked"}

    @r.on("DataTransfer")
    def data_transfer(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        return {"status": "UnknownVendorId"}

    @r.on("TriggerMessage")
    def trigger(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        model.commands.put_nowait(("trigger", payload))
        return ACCEPTED

    @r.on("ChangeConfiguration", version=V16)
    def change_configuration(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        model.configuration[payload["key"]] = payload["value"]
        return ACCEPTED

    @r.on("GetConfiguration", version=V16)
    def get_configuration(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        keys = payload.get("key") or list(model.configuration)
        known = [{"key": k, "readonly": False, "value": model.configuration[k]}
                 for k in keys if k in model.configuration]
        unknown = [k for k in keys if k not in model.configuration]
        return {"configurationKey": known, **({"unknownKey": unknown} if unknown else {})}

    @r.on("SetVariables")
    def set_variables(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        results = []
        for item in payload["setVariableData"]:
            key = variable_key(item)
            model.configuration[key] = item["attributeValue"]
            results.append({"attributeStatus": "Accepted", "component": item["component"],
                            "variable": item["variable"]})
        return {"setVariableResult": results}

    @r.on("GetVariables")
    def get_variables(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        results = []
        for item in payload["getVariableData"]:
            key = variable_key(item)
            value = model.configuration.get(key)
            result: dict[str, Any] = {
                "attributeStatus": "Accepted" if value is not None else "UnknownVariable",
                "component": item["component"], "variable": item["variable"]}
            if value is not None:
                result["attributeValue"] = value
            results.append(result)
        return {"getVariableResult": results}

    def start(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        model.commands.put_nowait(("start", payload))
        return ACCEPTED

    def stop(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        model.commands.put_nowait(("stop", payload))
        return ACCEPTED

    r.on("RemoteStartTransaction", version=V16)(start)
    r.on("RemoteStopTransaction", version=V16)(stop)
    r.on("RequestStartTransaction")(start)
    r.on("RequestStopTransaction")(stop)

    return r
