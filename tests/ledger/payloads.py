"""TransactionEvent payloads and ledger changes the store tests share."""

from typing import Any

from csms.ledger.model import Transaction, transaction_event
from csms.ledger.store import Change


def event(tx_id: str, seq_no: int, kind: str = "Updated") -> dict[str, Any]:
    """A 2.0.1 TransactionEvent whose register reads 100 Wh per seqNo."""
    return {"eventType": kind, "timestamp": f"2026-03-01T10:00:{seq_no:02d}Z",
            "triggerReason": "MeterValuePeriodic", "seqNo": seq_no,
            "transactionInfo": {"transactionId": tx_id},
            "meterValue": [{"timestamp": f"2026-03-01T10:00:{seq_no:02d}Z",
                            "sampledValue": [{"value": 100.0 * seq_no}]}]}


def change(station: str, payload: dict[str, Any]) -> Change:
    def apply(tx: Transaction | None) -> Transaction:
        return transaction_event(station, "2.0.1", payload, tx)
    return apply
