"""Transactions: 1.6 Start/StopTransaction with ids we allocate, 2.x TransactionEvent with
the station's ids, and MeterValues."""

from typing import Any

from csms.handlers.authorization import id_info, token_of
from csms.protocol.router import Context, Router
from csms.protocol.versions import V16
from csms.services import Services


def router(services: Services) -> Router:
    r = Router()
    store = services.stations

    @r.on("StartTransaction", version=V16)
    async def start_transaction(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        tx_id = await services.transactions.next_id()
        info = id_info(context, payload["idTag"])
        await store.open_transaction(context.station_id, str(tx_id), {
            "connectorId": payload["connectorId"], "idTag": payload["idTag"],
            "meterStart": payload["meterStart"], "startedAt": payload["timestamp"],
            "authorization": info["idTagInfo"]["status"],
        })
        return {"transactionId": tx_id, **info}

    @r.on("StopTransaction", version=V16)
    async def stop_transaction(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        tx = await store.close_transaction(context.station_id, str(payload["transactionId"]), {
            "meterStop": payload["meterStop"], "stoppedAt": payload["timestamp"],
            "reason": payload.get("reason", "Local"),
        })
        if tx is None:
            context.log.warning("StopTransaction for unknown transaction %s",
                                payload["transactionId"])
        # idTagInfo only when an idTag was given (OCPP 1.6 §6.47).
        return id_info(context, payload["idTag"]) if "idTag" in payload else {}

    @r.on("TransactionEvent")
    async def transaction_event(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        info = payload["transactionInfo"]
        tx_id = info["transactionId"]
        data = {"lastEvent": payload["triggerReason"], "seqNo": payload["seqNo"],
                "updatedAt": payload["timestamp"], **info}
        event = payload["eventType"]
        if event == "Started":
            data["startedAt"] = payload["timestamp"]
            if "evse" in payload:
                data["evse"] = payload["evse"]
            await store.open_transaction(context.station_id, tx_id, data)
        elif event == "Updated":
            if await store.update_transaction(context.station_id, tx_id, data) is None:
                await store.open_transaction(context.station_id, tx_id, data)  # missed Started
        else:
            await store.close_transaction(context.station_id, tx_id, data)
        if "meterValue" in payload:
            await store.record_meter_values(context.station_id, {
                "transactionId": tx_id, "meterValue": payload["meterValue"]})
        token = token_of(payload, context.version)
        return id_info(context, token) if token is not None else {}

    @r.on("MeterValues")
    async def meter_values(payload: dict[str, Any], context: Context) -> None:
        await store.record_meter_values(context.station_id, payload)

    return r
