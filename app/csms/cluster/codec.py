"""Registry entries as Redis stores them: JSON with the password's hash, never a password."""

import json
from typing import Any

from csms.state.registry import StationEntry


def entry_to_json(entry: StationEntry) -> str:
    return json.dumps({
        "stationId": entry.station_id, "enabled": entry.enabled, "versions": list(entry.versions),
        "securityProfile": entry.security_profile, "passwordHash": entry.password_hash,
        "heartbeatInterval": entry.heartbeat_interval, "acceptAll": entry.accept_all,
        "idTokens": sorted(entry.id_tokens), "configuration": dict(entry.configuration),
        "name": entry.name, "namespace": entry.namespace,
    })


def entry_from_json(text: str | bytes) -> StationEntry:
    data: dict[str, Any] = json.loads(text)
    return StationEntry(
        station_id=data["stationId"], enabled=data["enabled"], versions=tuple(data["versions"]),
        security_profile=data["securityProfile"], password_hash=data["passwordHash"],
        heartbeat_interval=data["heartbeatInterval"], accept_all=data["acceptAll"],
        id_tokens=frozenset(data["idTokens"]), configuration=data["configuration"],
        name=data["name"], namespace=data["namespace"],
    )
