"""The state a central system's handlers and API share, each part behind its interface."""

import dataclasses
from typing import Any, Protocol

from csms.ledger.store import Ledger, MemoryLedger
from csms.state.admission import TokenBucket
from csms.state.calls import CallRouter, LocalRouter
from csms.state.commands import CommandStore, MemoryCommandStore
from csms.state.connections import Connections
from csms.state.events import EventBus, MemoryEventBus
from csms.state.presence import NoPresence, Presence
from csms.state.registry import MemoryRegistry, StationEntry, StationRegistry
from csms.state.stations import MemoryStationStore, StationStore
from csms.state.transactions import MemoryTransactionIds, TransactionIds


class Resource(Protocol):
    """Something the app starts after start-up and closes at shutdown (a Redis client)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


@dataclasses.dataclass
class Services:
    registry: StationRegistry = dataclasses.field(default_factory=MemoryRegistry)
    stations: StationStore = dataclasses.field(default_factory=MemoryStationStore)
    transactions: TransactionIds = dataclasses.field(default_factory=MemoryTransactionIds)
    ledger: Ledger = dataclasses.field(default_factory=MemoryLedger)
    events: EventBus = dataclasses.field(default_factory=MemoryEventBus)
    connections: Connections = dataclasses.field(default_factory=Connections)
    commands: CommandStore = dataclasses.field(default_factory=MemoryCommandStore)
    presence: Presence = dataclasses.field(default_factory=NoPresence)
    # None: the embedded router over `connections`.
    router: CallRouter = None  # type: ignore[assignment]
    # BootNotifications beyond this rate are answered Pending (reconnect storms).
    boots: TokenBucket = dataclasses.field(default_factory=TokenBucket.unlimited)
    pending_interval: float = 60.0  # seconds, jittered, in a Pending boot's answer
    # The entry an unknown station gets when the server runs with accept_unknown.
    default_entry: StationEntry | None = None
    resources: list[Any] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        if self.router is None:
            self.router = LocalRouter(self.connections)

    async def entry(self, station_id: str) -> StationEntry | None:
        entry = await self.registry.get(station_id)
        # Unregistered stations share the one default entry (its station_id is "*").
        return entry if entry is not None else self.default_entry
