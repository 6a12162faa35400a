"""What the central system knows about each station beyond its registry entry: boot info,
connector statuses, the last meter values and configuration outcomes (its transactions are
the ledger's, `csms.ledger`).

Connector statuses and meter values belong to one station session: a BootNotification, or a
connection with another OCPP version than the last, starts a new one and clears them (a
rebooted station reports them afresh, and 1.6 and 2.x name connectors differently).
Configuration outcomes outlive a reboot: the station keeps its configuration. Sizes are
bounded per station so a misbehaving station cannot grow memory without limit.
"""

import dataclasses
import sys
import time
from typing import Any, NamedTuple, Protocol

from csms.clock import rfc3339

MAX_CONNECTORS = 64
MAX_CONFIG_KEYS = 256


class Boot(NamedTuple):
    """Boot info kept as a tuple: a fifth of a dict's memory, times 19,000 stations."""

    vendor: str | None = None
    model: str | None = None
    firmwareVersion: str | None = None
    serialNumber: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in zip(self._fields, self, strict=True) if v is not None}


@dataclasses.dataclass(slots=True)
class StationState:
    station_id: str
    boot: Boot | None = None
    booted_at: float | None = None
    protocol: str | None = None  # the OCPP version of its current or last connection
    # Tables are made on first use: most of 19,000 idle stations never fill all of them.
    connectors: dict[str, dict[str, Any]] | None = None
    meter_values: dict[str, Any] | None = None
    configuration: dict[str, str] | None = None

    def view(self) -> dict[str, Any]:
        return {
            "version": self.protocol,
            "boot": self.boot.as_dict() if self.boot else None,
            "bootedAt": rfc3339(self.booted_at),
            "connectors": self.connectors or {},
            "lastMeterValues": self.meter_values,
            "configuration": self.configuration or {},
        }


class StationStore(Protocol):
    async def get(self, station_id: str) -> StationState | None: ...

    async def record_protocol(self, station_id: str, version: str) -> None:
        """A connection opened with this OCPP version; another than the last one's starts a
        new station session."""

    async def record_boot(self, station_id: str, boot: dict[str, Any]) -> None:
        """An accepted BootNotification: a new station session."""

    async def record_connector(self, station_id: str, key: str, status: dict[str, Any]) -> None:
        ...

    async def record_meter_values(self, station_id: str, values: dict[str, Any]) -> None: ...

    async def record_configuration(self, station_id: str, key: str, outcome: str) -> None: ...



def _bounded_set(state: StationState, name: str, key: str, value: Any, limit: int) -> None:
    table = getattr(state, name)
    if table is None:
        table = {}
        setattr(state, name, table)
    if key not in table and len(table) >= limit:
        table.pop(next(iter(table)))  # drop the oldest key
    table[key] = value


class MemoryStationStore:
    def __init__(self) -> None:
        self._states: dict[str, StationState] = {}

    def _state(self, station_id: str) -> StationState:
        state = self._states.get(station_id)
        if state is None:
            state = self._states[station_id] = StationState(station_id)
        return state

    async def get(self, station_id: str) -> StationState | None:
        return self._states.get(station_id)

    async def record_protocol(self, station_id: str, version: str) -> None:
        state = self._state(station_id)
        if state.protocol is not None and state.protocol != version:
            state.connectors = state.meter_values = None
        state.protocol = version

    async def record_boot(self, station_id: str, boot: dict[str, Any]) -> None:
        state = self._state(station_id)
        state.connectors = state.meter_values = None
        # Interned: a fleet shares a handful of vendors, models and firmware versions.
        state.boot = Boot(*(sys.intern(v) if isinstance(v := boot.get(k), str) else v
                            for k in Boot._fields))
        state.booted_at = time.time()

    async def record_connector(self, station_id: str, key: str, status: dict[str, Any]) -> None:
        _bounded_set(self._state(station_id), "connectors", key, status, MAX_CONNECTORS)

    async def record_meter_values(self, station_id: str, values: dict[str, Any]) -> None:
        self._state(station_id).meter_values = values

    async def record_configuration(self, station_id: str, key: str, outcome: str) -> None:
        _bounded_set(self._state(station_id), "configuration", key, outcome, MAX_CONFIG_KEYS)
