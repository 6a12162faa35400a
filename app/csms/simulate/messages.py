"""The station's own messages, built per version."""

import uuid
from typing import Any

from csms.clock import now
from csms.protocol.versions import V16


def boot(version: str, sid: str) -> dict[str, Any]:
    if version == V16:
        return {"chargePointVendor": "csms", "chargePointModel": "Simulator",
                "chargePointSerialNumber": sid[-25:], "firmwareVersion": "1.0.0"}
    return {"reason": "PowerUp", "chargingStation": {
        "vendorName": "csms", "model": "Simulator", "serialNumber": sid[-25:],
        "firmwareVersion": "1.0.0"}}


def status(version: str, state: str) -> dict[str, Any]:
    if version == V16:
        return {"connectorId": 1, "errorCode": "NoError", "status": state, "timestamp": now()}
    state = {"Preparing": "Occupied", "Charging": "Occupied", "Finishing": "Occupied"}.get(
        state, state)
    return {"timestamp": now(), "connectorStatus": state, "evseId": 1, "connectorId": 1}


def authorize(version: str, token: str) -> dict[str, Any]:
    if version == V16:
        return {"idTag": token}
    return {"idToken": {"idToken": token, "type": "ISO14443"}}


def sample(version: str, wh: float, watts: float) -> dict[str, Any]:
    values: list[dict[str, Any]]
    if version == V16:
        values = [{"value": f"{wh:.1f}", "measurand": "Energy.Active.Import.Register",
                   "unit": "Wh"},
                  {"value": f"{watts:.0f}", "measurand": "Power.Active.Import", "unit": "W"}]
    else:
        values = [{"value": round(wh, 1), "measurand": "Energy.Active.Import.Register"},
                  {"value": round(watts), "measurand": "Power.Active.Import"}]
    return {"timestamp": now(), "sampledValue": values}


def meter_values(version: str, tx_id: Any, wh: float, watts: float) -> dict[str, Any]:
    if version == V16:
        return {"connectorId": 1, "transactionId": tx_id,
                "meterValue": [sample(version, wh, watts)]}
    return {"evseId": 1, "meterValue": [sample(version, wh, watts)]}


class Transaction:
    """One charging session's identifiers and counters."""

    def __init__(self, version: str, token: str) -> None:
        self.version = version
        self.token = token
        self.local_id = str(uuid.uuid4())
        self.server_id: Any = None  # 1.6: allocated by the central system
        self.seq = 0
        self.wh = 0.0

    def event(self, kind: str, trigger: str, watts: float = 0.0) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "eventType": kind, "timestamp": now(), "triggerReason": trigger,
            "seqNo": self.seq, "transactionInfo": {"transactionId": self.local_id},
            "evse": {"id": 1, "connectorId": 1},
        }
        if kind == "Started":
            payload["idToken"] = {"idToken": self.token, "type": "ISO14443"}
        if kind != "Started" or watts:
            payload["meterValue"] = [sample(self.version, self.wh, watts)]
        if kind == "Ended":
            payload["transactionInfo"]["stoppedReason"] = "Local"
        self.seq += 1
        return payload
