"""The pure part of the operator: a ChargingStation resource and its password become a
registry entry; the live state the pods leave in Redis becomes the resource's `.status`;
two statuses in a row tell which Kubernetes Events to post. No I/O here."""

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

from csms.state.manifest import API_VERSION, KIND
from csms.state.registry import RegistryError, StationEntry, entry_from_manifest

CONFIG_APPLIED = {"Accepted": "Applied", "RebootRequired": "RebootRequired"}


class Invalid(Exception):
    """What the CRD schema cannot check is wrong; the message names the field."""


def station_id(name: str, spec: Mapping[str, Any]) -> str:
    return str(spec.get("stationId") or name)


def secret_ref(spec: Mapping[str, Any]) -> tuple[str, str] | None:
    ref = spec.get("passwordSecretRef")
    return (ref["name"], ref.get("key") or "password") if ref else None


def entry_for(name: str, namespace: str | None, spec: Mapping[str, Any],
              password: str | None, password_hash: str | None = None) -> StationEntry:
    """The registry entry of a resource, its password given (read from the Secret).
    `password_hash`, when given, is used instead of hashing `password` again."""
    spec = dict(spec)
    ref = spec.pop("passwordSecretRef", None)
    profile = spec.get("securityProfile", 0)
    if profile in (1, 2) and ref is None:
        raise Invalid(f"spec.passwordSecretRef: required for securityProfile {profile}")
    if ref is not None:
        if password is None:
            raise Invalid(f"spec.passwordSecretRef: Secret {ref['name']!r} has no key "
                          f"{ref.get('key') or 'password'!r}")
        spec["password"] = password
    document = {"apiVersion": API_VERSION, "kind": KIND,
                "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    try:
        return entry_from_manifest(document, password_hash=password_hash if ref else None)
    except RegistryError as exc:
        raise Invalid(str(exc).replace("spec.password:", "spec.passwordSecretRef:")) from None


def changed_keys(old: Mapping[str, str] | None, new: Mapping[str, str]) -> list[str]:
    """The configuration keys whose desired value is new or different."""
    return sorted(k for k, v in new.items() if old is None or old.get(k) != v)


@dataclasses.dataclass(frozen=True)
class Live:
    """What Redis says about a station right now."""

    connected: bool = False
    pod: str | None = None
    protocol: str | None = None
    last_seen: float | None = None
    boot: Mapping[str, Any] | None = None
    booted_at: float | None = None
    outcomes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    last_rejection: Mapping[str, Any] | None = None


def timestamp(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def configuration_states(desired: Mapping[str, str],
                         outcomes: Mapping[str, str]) -> dict[str, str]:
    """Per desired key: Applied, RebootRequired, Rejected (the station's answer or the
    failure) or Pending (not answered yet)."""
    states = {}
    for key in desired:
        outcome = outcomes.get(key)
        if outcome is None:
            states[key] = "Pending"
        else:
            states[key] = CONFIG_APPLIED.get(outcome, "Rejected")
    return states


def _condition(kind: str, ok: bool, reason: str, message: str,
               previous: Mapping[str, Any], now: str) -> dict[str, Any]:
    status = "True" if ok else "False"
    old = next((c for c in previous.get("conditions", []) if c.get("type") == kind), None)
    since = old["lastTransitionTime"] if old and old.get("status") == status else now
    return {"type": kind, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": since}


def status_for(entry: StationEntry, live: Live, previous: Mapping[str, Any],
               now: str) -> dict[str, Any]:
    """The resource's status. Times of conditions whose status did not change are kept, so
    an unchanged station yields an identical status (and no write)."""
    config = configuration_states(entry.configuration, live.outcomes)
    rejected = sorted(k for k, v in config.items() if v == "Rejected")
    pending = sorted(k for k, v in config.items() if v == "Pending")
    if rejected:
        applied = (False, "Rejected", f"rejected: {', '.join(rejected)}")
    elif pending:
        applied = (False, "Pending", f"pending: {', '.join(pending)}")
    else:
        applied = (True, "Applied", f"{len(config)} keys applied")
    registered = (entry.enabled, "Registered" if entry.enabled else "Disabled",
                  "in the registry" if entry.enabled else "spec.enabled is false")
    connected = (live.connected, "Connected" if live.connected else "NotConnected",
                 f"to {live.pod} with OCPP {live.protocol}" if live.connected else
                 "no open connection")
    status: dict[str, Any] = {
        "stationId": entry.station_id,
        "connected": live.connected,
        "pod": live.pod if live.connected else None,
        "protocol": live.protocol,
        "lastSeen": timestamp(live.last_seen),
        "lastBoot": {**live.boot, "at": timestamp(live.booted_at)} if live.boot else None,
        "configuration": config,
        "lastRejection": dict(live.last_rejection) if live.last_rejection else None,
        "conditions": [
            _condition("Registered", *registered, previous, now),
            _condition("Connected", *connected, previous, now),
            _condition("ConfigurationApplied", *applied, previous, now),
        ],
    }
    return status


def differs(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return any(old.get(key) != value for key, value in new.items())


def events(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(type, reason, message) of the Kubernetes Events the change from `old` deserves."""
    out = []
    rejection = new.get("lastRejection")
    if rejection and rejection != old.get("lastRejection"):
        out.append(("Warning", "CredentialsRejected",
                    f"handshake refused: {rejection.get('reason')}"))
    before = old.get("configuration") or {}
    newly = sorted(k for k, v in (new.get("configuration") or {}).items()
                   if v == "Rejected" and before.get(k) != "Rejected")
    if newly:
        out.append(("Warning", "ConfigurationRejected",
                    f"the station rejected: {', '.join(newly)}"))
    return out
