"""One transaction model for OCPP 1.6, 2.0.1 and 2.1: what billing needs, built from the
station's messages by pure functions (no I/O), so every ugly case is a literal-payload test.

A transaction is keyed central-system-wide: 1.6 by the id csms allocated (`16:{id}`, unique
across the cluster), 2.x by the station's own id scoped by the station (`{station}:{id}`).
Times are the station's timestamps as sent. Energy is in Wh: 1.6 `meterStop - meterStart`,
else (and always in 2.x) the `Energy.Active.Import.Register` total read at the end minus the
one read at the start, converted from kWh or by the 2.x multiplier.

What real stations send and the record says instead of failing:
- a retried message (a `seqNo` already seen) changes nothing and is counted in `duplicates`;
- an Updated or Ended before its Started (or none at all): the record exists from the first
  message, `outOfOrder` is set, and without a Started it ends `incomplete`;
- `seqNo` gaps (messages lost or still queued on the station) are listed in `missingSeqNos`;
- `offline: true` on any message sets `offline`;
- a register that goes backwards (meter replaced or rolled over) leaves `energyWh` unknown
  and says why in `anomalies`.
"""

import bisect
import dataclasses
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from csms.clock import parse_rfc3339
from csms.protocol.versions import V16

REGISTER = "Energy.Active.Import.Register"
MAX_PERIODS = 200  # charging-state periods kept per transaction
MAX_MISSING = 100  # missing seqNos listed (a station that skips thousands is one anomaly)

ACTIVE, COMPLETED, INCOMPLETE = "active", "completed", "incomplete"


@dataclasses.dataclass(frozen=True, slots=True)
class Reading:
    """One energy register reading: when, and the total in Wh."""

    timestamp: str
    wh: float
    context: str | None = None


@dataclasses.dataclass(slots=True)
class Transaction:
    key: str
    station_id: str
    version: str
    transaction_id: str
    evse_id: int | None = None
    connector_id: int | None = None
    id_token: str | None = None
    id_token_type: str | None = None
    authorization: str | None = None  # what csms answered for the id token at the start
    started_at: str | None = None
    stopped_at: str | None = None
    meter_start_wh: float | None = None
    meter_stop_wh: float | None = None
    first_reading: Reading | None = None
    last_reading: Reading | None = None
    readings: int = 0
    charging_periods: list[dict[str, str]] = dataclasses.field(default_factory=list)
    stop_reason: str | None = None
    ended: bool = False
    started: bool = False  # a StartTransaction, or a TransactionEvent Started, was seen
    offline: bool = False
    out_of_order: bool = False
    duplicates: int = 0
    # The seqNos received, as sorted, disjoint [first, last] runs: one run for a station
    # that sends in order, however long the session.
    seq_runs: list[list[int]] = dataclasses.field(default_factory=list)
    anomalies: list[str] = dataclasses.field(default_factory=list)
    updated_at: str | None = None  # the latest station timestamp of any of its messages
    revision: int = 0  # changes applied; a retried message (a duplicate) is not one

    @property
    def idempotency_key(self) -> str:
        """Names this revision of the record, the same however often it is delivered."""
        return f"{self.key}#{self.revision}"

    @property
    def status(self) -> str:
        if not self.ended:
            return ACTIVE
        return COMPLETED if self.started else INCOMPLETE

    @property
    def energy_wh(self) -> float | None:
        """Wh delivered so far: from meterStart and meterStop (1.6) where sent, else from
        the register's first reading (Transaction.Begin if any) and its last (Transaction.End
        if any); unknown when the meter went backwards (see `anomalies`)."""
        start, stop = self.meter_start_wh, self.meter_stop_wh
        if start is None and self.first_reading is not None:
            start = self.first_reading.wh
        if stop is None and self.last_reading is not None:
            stop = self.last_reading.wh
        if start is None or stop is None or stop < start:
            return None
        return round(stop - start, 3)

    @property
    def seq_nos(self) -> set[int]:
        return {n for first, last in self.seq_runs for n in range(first, last + 1)}

    def has_seq_no(self, seq_no: int) -> bool:
        at = bisect.bisect_right(self.seq_runs, [seq_no, math.inf]) - 1
        return at >= 0 and self.seq_runs[at][0] <= seq_no <= self.seq_runs[at][1]

    def add_seq_no(self, seq_no: int) -> None:
        runs = self.seq_runs
        at = bisect.bisect_right(runs, [seq_no, math.inf])
        if at and runs[at - 1][1] >= seq_no - 1:  # extends the run before it
            runs[at - 1][1] = max(runs[at - 1][1], seq_no)
            at -= 1
        else:
            runs.insert(at, [seq_no, seq_no])
        if at + 1 < len(runs) and runs[at + 1][0] <= runs[at][1] + 1:  # meets the next
            runs[at][1] = max(runs[at][1], runs.pop(at + 1)[1])

    @property
    def missing_seq_nos(self) -> list[int]:
        """The first gaps below the highest seqNo seen, at most MAX_MISSING (a station may
        send seqNo 2,147,483,647: the gaps are read off the runs, not counted)."""
        missing: list[int] = []
        expected = 0
        for first, last in self.seq_runs:
            missing.extend(range(expected, min(first, expected + MAX_MISSING - len(missing))))
            if len(missing) >= MAX_MISSING:
                break
            expected = last + 1
        return missing

    def view(self) -> dict[str, Any]:
        """The record as the API and the event stream show it (camelCase, like OCPP)."""
        return {
            "key": self.key, "stationId": self.station_id, "version": self.version,
            "transactionId": self.transaction_id, "evseId": self.evse_id,
            "connectorId": self.connector_id, "idToken": self.id_token,
            "idTokenType": self.id_token_type, "authorization": self.authorization,
            "status": self.status,
            "startedAt": self.started_at, "stoppedAt": self.stopped_at,
            "meterStartWh": self.meter_start_wh, "meterStopWh": self.meter_stop_wh,
            "energyWh": self.energy_wh, "stopReason": self.stop_reason,
            "chargingPeriods": list(self.charging_periods),
            "meter": {
                "readings": self.readings,
                "first": _reading_view(self.first_reading),
                "last": _reading_view(self.last_reading),
            },
            "offline": self.offline, "outOfOrder": self.out_of_order,
            "duplicates": self.duplicates, "missingSeqNos": self.missing_seq_nos,
            "anomalies": list(self.anomalies), "updatedAt": self.updated_at,
            "revision": self.revision,
        }

    def to_json(self) -> dict[str, Any]:
        """Everything, for a store; `from_json` reads it back. By hand: dataclasses.asdict
        costs fifty microseconds a record, on the path of every transaction message."""
        data = {name: getattr(self, name) for name in _FIELDS}
        data["first_reading"] = _reading_view(self.first_reading)
        data["last_reading"] = _reading_view(self.last_reading)
        return data

    def clone(self) -> "Transaction":
        """A copy to change while others read this one: the fields by hand (half the time of
        `copy.copy`), the lists a change extends copied too."""
        twin = object.__new__(Transaction)
        for name in _FIELDS:
            setattr(twin, name, getattr(self, name))
        twin.charging_periods = list(self.charging_periods)
        twin.anomalies = list(self.anomalies)
        twin.seq_runs = [list(run) for run in self.seq_runs]
        return twin

    def dumps(self) -> bytes:
        return orjson.dumps(self.to_json())

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Transaction":
        fields = dict(data)
        for name in ("first_reading", "last_reading"):
            if fields.get(name) is not None:
                fields[name] = Reading(**fields[name])
        return cls(**fields)

    @classmethod
    def loads(cls, raw: bytes | str) -> "Transaction":
        return cls.from_json(orjson.loads(raw))


_FIELDS = tuple(f.name for f in dataclasses.fields(Transaction))


def _reading_view(reading: Reading | None) -> dict[str, Any] | None:
    if reading is None:
        return None
    return {"timestamp": reading.timestamp, "wh": reading.wh, "context": reading.context}


class ForeignTransaction(ValueError):
    """A 1.6 message names a transaction id csms gave another station."""


def _own(tx: Transaction | None, station_id: str) -> Transaction | None:
    if tx is not None and tx.station_id != station_id:
        raise ForeignTransaction(f"transaction {tx.transaction_id} belongs to {tx.station_id}")
    return tx


def key_of(station_id: str, version: str, transaction_id: str | float) -> str:
    """1.6 ids are integers, which JSON may write as 5.0: one key for both."""
    if version == V16:
        return f"16:{int(transaction_id)}"
    return f"{station_id}:{transaction_id}"


# -- energy --------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    """A sampled value as a finite number (1.6 sends strings, 2.x numbers; SignedData is
    not a number)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(Decimal(value.strip()))
        except (InvalidOperation, ValueError):
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def register_wh(sampled: Mapping[str, Any], version: str) -> float | None:
    """The Wh of one sampled value if it is the total active import register, else None."""
    if sampled.get("measurand", REGISTER) != REGISTER or sampled.get("phase"):
        return None  # another quantity, or one phase of it
    if version == V16:
        if sampled.get("format") == "SignedData":
            return None
        unit, scale = sampled.get("unit", "Wh"), 0
    else:
        measure = sampled.get("unitOfMeasure") or {}
        unit, scale = measure.get("unit", "Wh"), int(measure.get("multiplier", 0))
    value = _number(sampled.get("value"))
    if value is None:
        return None
    if unit == "kWh":
        value *= 1000
    elif unit != "Wh":
        return None
    return round(value * 10.0 ** scale, 6)


def readings(meter_values: Iterable[Mapping[str, Any]], version: str) -> list[Reading]:
    """The register readings in a `meterValue` (2.x) or `meterValue`/`transactionData` (1.6)
    list, one per timestamp (the first total of each)."""
    found = []
    for meter_value in meter_values:
        for sampled in meter_value.get("sampledValue") or ():
            wh = register_wh(sampled, version)
            if wh is not None:
                found.append(Reading(meter_value["timestamp"], wh, sampled.get("context")))
                break
    return found


UNREADABLE = datetime.min.replace(tzinfo=UTC)


def instant(timestamp: str) -> datetime:
    """An RFC 3339 timestamp as an aware datetime (strings do not compare across offsets or
    precisions). One the schema let through but no calendar has (`2026-02-30T…`) sorts
    first, as UNREADABLE, and is named in the record's anomalies: never an error."""
    try:  # the C parser first: it reads what stations send in a fraction of the time
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        try:  # what it does not read: a leap second, a lower-case t or z, long fractions
            return parse_rfc3339(timestamp)
        except ValueError:
            return UNREADABLE
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _starts_better(new: Reading, current: Reading | None) -> bool:
    if current is None:
        return True
    begins, began = new.context == "Transaction.Begin", current.context == "Transaction.Begin"
    return begins if begins != began else instant(new.timestamp) < instant(current.timestamp)


def _ends_better(new: Reading, current: Reading | None) -> bool:
    if current is None:
        return True
    ends, ended = new.context == "Transaction.End", current.context == "Transaction.End"
    return ends if ends != ended else instant(new.timestamp) >= instant(current.timestamp)


def _take_readings(tx: Transaction, found: list[Reading]) -> None:
    for reading in found:
        tx.readings += 1
        last = tx.last_reading
        if last is not None and instant(reading.timestamp) > instant(last.timestamp) and \
                reading.wh < last.wh:
            _anomaly(tx, f"the register went back from {last.wh:g} Wh to {reading.wh:g} Wh "
                         f"at {reading.timestamp}")
        if _starts_better(reading, tx.first_reading):
            tx.first_reading = reading
        if _ends_better(reading, tx.last_reading):
            tx.last_reading = reading


def _anomaly(tx: Transaction, text: str) -> None:
    if text not in tx.anomalies and len(tx.anomalies) < 20:
        tx.anomalies.append(text)


def _touch(tx: Transaction, timestamp: str) -> None:
    """A message was applied: the latest time seen, and one more revision."""
    tx.revision += 1
    if instant(timestamp) is UNREADABLE:
        _anomaly(tx, f"unreadable timestamp {timestamp[:40]!r}")
    if tx.updated_at is None or instant(timestamp) > instant(tx.updated_at):
        tx.updated_at = timestamp


# -- OCPP 1.6 ------------------------------------------------------------------------------


def start_16(station_id: str, transaction_id: int, payload: Mapping[str, Any],
             tx: Transaction | None = None) -> Transaction:
    """StartTransaction.req, given the id csms allocated for it."""
    tx = tx or Transaction(key_of(station_id, V16, transaction_id), station_id, V16,
                           str(transaction_id))
    tx.started = True
    tx.connector_id = int(payload["connectorId"])
    tx.id_token, tx.id_token_type = payload["idTag"], None  # 1.6 id tags carry no type
    tx.started_at = payload["timestamp"]
    tx.meter_start_wh = float(payload["meterStart"])
    _touch(tx, payload["timestamp"])
    return tx


def start_fingerprint(station_id: str, payload: Mapping[str, Any]) -> str:
    """What makes a retried StartTransaction.req the same one (the station did not get our
    answer and sent it again): it must get the id given the first time, not a second
    transaction."""
    moment = instant(payload["timestamp"])
    when = payload["timestamp"] if moment is UNREADABLE else moment.astimezone(UTC).isoformat()
    return "|".join((station_id, str(payload["connectorId"]), payload["idTag"], when,
                     str(payload["meterStart"])))


def stop_16(station_id: str, payload: Mapping[str, Any],
            tx: Transaction | None = None) -> Transaction:
    """StopTransaction.req; without the record of its start, an incomplete one."""
    transaction_id = int(payload["transactionId"])
    tx = _own(tx, station_id)
    if tx is None:
        tx = Transaction(key_of(station_id, V16, transaction_id), station_id, V16,
                         str(transaction_id), out_of_order=True)
    if tx.ended:
        tx.duplicates += 1  # a retried StopTransaction
        return tx
    tx.ended = True
    tx.stopped_at = payload["timestamp"]
    tx.meter_stop_wh = float(payload["meterStop"])
    tx.stop_reason = payload.get("reason", "Local")  # the 1.6 default when omitted
    if tx.id_token is None and payload.get("idTag"):
        tx.id_token = payload["idTag"]
    _take_readings(tx, readings(payload.get("transactionData") or (), V16))
    if tx.meter_start_wh is not None and tx.meter_stop_wh < tx.meter_start_wh:
        _anomaly(tx, f"meterStop {payload['meterStop']} is below meterStart "
                     f"{tx.meter_start_wh:g}")
    _touch(tx, payload["timestamp"])
    return tx


def meter_values_16(station_id: str, payload: Mapping[str, Any],
                    tx: Transaction | None = None) -> Transaction | None:
    """MeterValues.req that names a transaction; None when it names none."""
    transaction_id = payload.get("transactionId")
    if transaction_id is None:
        return tx
    tx = _own(tx, station_id)
    if tx is None:
        tx = Transaction(key_of(station_id, V16, transaction_id), station_id, V16,
                         str(int(transaction_id)), connector_id=int(payload["connectorId"]),
                         out_of_order=True)
    _take_readings(tx, readings(payload.get("meterValue") or (), V16))
    stamps = [value["timestamp"] for value in payload.get("meterValue") or ()]
    if stamps:  # the schema asks for one at least
        _touch(tx, max(stamps, key=instant))
    return tx


# -- OCPP 2.0.1 and 2.1 --------------------------------------------------------------------


def transaction_event(station_id: str, version: str, payload: Mapping[str, Any],
                      tx: Transaction | None = None) -> Transaction:
    """TransactionEvent.req (Started, Updated, Ended) in any order, retried or not."""
    info = payload["transactionInfo"]
    event, seq_no = payload["eventType"], int(payload["seqNo"])  # JSON may write 3 as 3.0
    if tx is None:
        tx = Transaction(key_of(station_id, version, info["transactionId"]), station_id,
                         version, info["transactionId"])
    if tx.has_seq_no(seq_no):
        tx.duplicates += 1  # the station retried a message we already have
        return tx
    if event != "Started" and not tx.started and not tx.seq_runs:
        tx.out_of_order = True  # its first message is not its Started
    if tx.seq_runs and seq_no < tx.seq_runs[-1][1]:
        tx.out_of_order = True
    tx.add_seq_no(seq_no)
    timestamp = payload["timestamp"]
    if payload.get("offline"):
        tx.offline = True
    if "evse" in payload:
        tx.evse_id = int(payload["evse"]["id"])
        connector = payload["evse"].get("connectorId")
        tx.connector_id = int(connector) if connector is not None else tx.connector_id
    if "idToken" in payload:
        tx.id_token = payload["idToken"]["idToken"]
        tx.id_token_type = payload["idToken"]["type"]
    if event == "Started":
        tx.started = True
        tx.started_at = timestamp
    if "chargingState" in info:
        _charging_state(tx, info["chargingState"], timestamp)
    _take_readings(tx, readings(payload.get("meterValue") or (), version))
    if event == "Ended":
        tx.ended = True
        tx.stopped_at = timestamp
        tx.stop_reason = info.get("stoppedReason", "Local")  # the spec's default
    _touch(tx, timestamp)
    return tx


def _charging_state(tx: Transaction, state: str, timestamp: str) -> None:
    periods = tx.charging_periods
    if periods and periods[-1]["state"] == state:
        return
    # Keep the periods in time order even when messages arrive out of order.
    period = {"state": state, "from": timestamp}
    at = len(periods)
    while at and instant(periods[at - 1]["from"]) > instant(timestamp):
        at -= 1
    periods.insert(at, period)
    if len(periods) > MAX_PERIODS:
        del periods[0]
