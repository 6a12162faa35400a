"""Where and when each station was last seen, for whoever watches from outside the pods
(the operator's `.status`). In one process the sessions already say it all: the embedded
implementation keeps nothing. In cluster mode it is written behind into Redis."""

from typing import Protocol


class Presence(Protocol):
    def connected(self, station_id: str, pod: str, protocol: str) -> None: ...

    def disconnected(self, station_id: str) -> None: ...

    def seen(self, station_id: str) -> None:
        """A sign of life (each Heartbeat)."""

    def rejected(self, station_id: str, reason: str) -> None:
        """A registered station's handshake was refused (credentials, certificate)."""


class NoPresence:
    def connected(self, station_id: str, pod: str, protocol: str) -> None:
        return None

    def disconnected(self, station_id: str) -> None:
        return None

    def seen(self, station_id: str) -> None:
        return None

    def rejected(self, station_id: str, reason: str) -> None:
        return None
