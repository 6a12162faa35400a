"""Transactions: 1.6 Start/StopTransaction with ids we allocate, 2.x TransactionEvent with
the station's ids, and MeterValues.

Each transaction message is answered only once the ledger holds it durably. When the ledger
cannot store it, the station gets InternalError and, as OCPP has it, retries the message
later (1.6 TransactionMessageAttempts, 2.x OCPPCommCtrlr.MessageAttempts).

Each change of a record is then published for billing as TransactionStarted,
TransactionUpdated or TransactionEnded, the same shape for every version, with the record's
idempotency key; a retried message changes nothing and publishes nothing.
"""

import logging
from typing import Any

from csms.handlers.authorization import id_info, token_of
from csms.ledger.model import (
    ForeignTransaction,
    Transaction,
    key_of,
    meter_values_16,
    start_16,
    start_fingerprint,
    stop_16,
    transaction_event,
)
from csms.ledger.store import Change
from csms.observability.counters import bump
from csms.protocol.errors import ErrorCode, RpcError
from csms.protocol.router import Context, Router
from csms.protocol.versions import V16
from csms.services import Services
from csms.state.errors import Unavailable

logger = logging.getLogger("csms.ledger")


def router(services: Services) -> Router:
    r = Router()
    ledger, store = services.ledger, services.stations

    async def durably(context: Context, key: str, change: Change,
                      fingerprint: str | None = None) -> Transaction | None:
        """The record once stored, its change published; None for a 1.6 message naming
        another station's transaction (logged and counted: answering an error would only
        make it retry)."""
        before: list[tuple[int, bool, bool]] = []

        def observed(tx: Transaction | None) -> Transaction:
            before.append((tx.revision, tx.started, tx.ended) if tx else (0, False, False))
            return change(tx)

        try:
            record = await ledger.update(key, observed, fingerprint)
        except Unavailable as exc:
            bump("csms_transactions_refused")
            context.log.warning("transaction message not stored, the station will retry: %s",
                                exc)
            raise RpcError(ErrorCode.INTERNAL_ERROR,
                           "the transaction could not be stored; retry later") from None
        except ForeignTransaction as exc:
            bump("csms_transactions_foreign")
            context.log.warning("not recorded: %s", exc)
            return None
        # The last call of `observed` is the one stored (a batch may be read again).
        if before and record.revision != before[-1][0] and services.events.listening:
            # Not a retry, not a known start: a change, for billing.
            _, started, ended = before[-1]
            kind = ("TransactionEnded" if record.ended and not ended else
                    "TransactionStarted" if record.started and not started else
                    "TransactionUpdated")
            services.events.publish(context.station_id, context.version, kind, {
                "idempotencyKey": record.idempotency_key, "transaction": record.view()})
        return record

    @r.on("StartTransaction", version=V16)
    async def start_transaction(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        sid = context.station_id
        info = id_info(context, payload["idTag"])
        status = info["idTagInfo"]["status"]
        tx_id = await services.transactions.next_id()

        def start(tx: Transaction | None) -> Transaction:
            record = start_16(sid, tx_id, payload, tx)
            record.authorization = status
            return record

        record = await durably(context, key_of(sid, V16, tx_id), start,
                               start_fingerprint(sid, payload))
        assert record is not None  # a start names no existing transaction
        return {"transactionId": int(record.transaction_id), **info}

    @r.on("StopTransaction", version=V16)
    async def stop_transaction(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        sid = context.station_id
        record = await durably(context, key_of(sid, V16, payload["transactionId"]),
                               lambda tx: stop_16(sid, payload, tx))
        if record is not None and not record.started:
            context.log.warning("StopTransaction for unknown transaction %s",
                                payload["transactionId"])
        # idTagInfo only when an idTag was given (OCPP 1.6 §6.47).
        return id_info(context, payload["idTag"]) if "idTag" in payload else {}

    @r.on("TransactionEvent")
    async def event(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        sid, version = context.station_id, context.version
        token = token_of(payload, version)
        info = id_info(context, token) if token is not None else {}
        tx_id = payload["transactionInfo"]["transactionId"]

        def apply(tx: Transaction | None) -> Transaction:
            record = transaction_event(sid, version, payload, tx)
            if info and record.authorization is None:
                record.authorization = info["idTokenInfo"]["status"]
            return record

        await durably(context, key_of(sid, version, tx_id), apply)
        if "meterValue" in payload:
            await store.record_meter_values(sid, {"transactionId": tx_id,
                                                  "meterValue": payload["meterValue"]})
        return info

    @r.on("MeterValues")
    async def meter_values(payload: dict[str, Any], context: Context) -> None:
        sid = context.station_id
        if context.version == V16 and "transactionId" in payload:
            await durably(context, key_of(sid, V16, payload["transactionId"]),
                          lambda tx: _meter_values(sid, payload, tx))
        await store.record_meter_values(sid, payload)

    return r


def _meter_values(station_id: str, payload: dict[str, Any],
                  tx: Transaction | None) -> Transaction:
    record = meter_values_16(station_id, payload, tx)
    assert record is not None  # the payload names a transaction
    return record
