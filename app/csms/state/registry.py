"""The station registry: which stations may connect, how they authenticate, what they get.

`load_stations` reads `ChargingStation` manifests from a YAML file or a folder of them. A bad
file raises `RegistryError` naming the file, the document and the field; the caller keeps the
registry it had.
"""

import base64
import binascii
import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import jsonschema_rs
import yaml

from csms.protocol.versions import normalize
from csms.state.credentials import hash_password
from csms.state.manifest import MANIFEST_SCHEMA, PASSWORD_MAX, PASSWORD_MIN, PROTOCOLS


class RegistryError(Exception):
    """A manifest that cannot become a registry entry."""


@dataclasses.dataclass(frozen=True, slots=True)
class StationEntry:
    station_id: str
    enabled: bool = True
    versions: tuple[str, ...] = ("2.1", "2.0.1", "1.6")
    security_profile: int = 0
    password_hash: str | None = dataclasses.field(default=None, repr=False)
    heartbeat_interval: int = 300
    accept_all: bool = False
    id_tokens: frozenset[str] = frozenset()
    configuration: Mapping[str, str] = dataclasses.field(default_factory=dict)
    name: str = ""
    namespace: str | None = None


class StationRegistry(Protocol):
    async def get(self, station_id: str) -> StationEntry | None: ...

    async def all(self) -> list[StationEntry]: ...

    async def replace(self, entries: Iterable[StationEntry]) -> None: ...


class MemoryRegistry:
    def __init__(self, entries: Iterable[StationEntry] = ()) -> None:
        self._entries = {e.station_id: e for e in entries}

    async def get(self, station_id: str) -> StationEntry | None:
        return self._entries.get(station_id)

    async def all(self) -> list[StationEntry]:
        return list(self._entries.values())

    async def replace(self, entries: Iterable[StationEntry]) -> None:
        self.set(entries)

    def set(self, entries: Iterable[StationEntry]) -> None:
        self._entries = {e.station_id: e for e in entries}


_validator = jsonschema_rs.validator_for(MANIFEST_SCHEMA)


def _listed(values: Any) -> str:
    return ", ".join(str(v) for v in values)


# What each schema rule asks, in words: a manifest error names the field and the rule, and
# never repeats the value, which may be a password (jsonschema's own messages quote it).
_RULES: dict[str, Any] = {
    "type": lambda c: f"must be of type {' or '.join(c['types'])}",
    "enum": lambda c: f"must be one of {_listed(c['options'])}",
    "const": lambda c: f"must be {c['expected_value']}",
    "minLength": lambda c: f"must be at least {c['limit']} characters",
    "maxLength": lambda c: f"must be at most {c['limit']} characters",
    "pattern": lambda c: f"must match {c['pattern']}",
    "minimum": lambda c: f"must be at least {c['limit']}",
    "maximum": lambda c: f"must be at most {c['limit']}",
    "minItems": lambda c: f"must have at least {c['limit']} items",
    "maxItems": lambda c: f"must have at most {c['limit']} items",
    "uniqueItems": lambda c: "must not repeat an item",
    "additionalProperties": lambda c: f"unexpected fields: {_listed(c['unexpected'])}",
}


def describe(error: Any) -> str:
    """`spec.password: must be at most 40 characters`, from a jsonschema-rs error."""
    kind = error.kind
    path = [str(p) for p in error.instance_path]
    if kind.name == "required":
        path.append(str(kind.as_dict()["property"]))
        rule = "is required"
    else:
        explain = _RULES.get(kind.name)
        rule = explain(kind.as_dict()) if explain else f"breaks the {kind.name} rule"
    return f"{'.'.join(path) or '(document)'}: {rule}"


def config_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def secret_value(secret: Mapping[str, Any], key: str) -> str | None:
    """A key of a Secret document: `stringData` as written, `data` base64 as stored."""
    if key in (secret.get("stringData") or {}):
        return str(secret["stringData"][key])
    encoded = (secret.get("data") or {}).get(key)
    if encoded is None:
        return None
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise RegistryError(f"Secret key {key!r} is not base64-encoded UTF-8") from None


def entry_from_manifest(doc: Any, password_hash: str | None = None,
                        secrets: Mapping[tuple[str | None, str], Mapping[str, Any]] | None = None,
                        ) -> StationEntry:
    """Map a validated-or-not manifest to an entry; raise RegistryError naming the field.
    `secrets` are the Secret documents by (namespace, name), for `passwordSecretRef`."""
    errors = list(_validator.iter_errors(doc)) if isinstance(doc, dict) else []
    if not isinstance(doc, dict):
        raise RegistryError("a manifest must be a mapping")
    if errors:
        raise RegistryError(describe(errors[0]))
    spec = doc.get("spec") or {}
    meta = doc["metadata"]
    profile = spec.get("securityProfile", 0)
    password = spec.get("password")
    ref = spec.get("passwordSecretRef")
    if ref is not None and password_hash is None:
        if password is not None:
            raise RegistryError("spec.password and spec.passwordSecretRef exclude each other")
        secret = (secrets or {}).get((meta.get("namespace"), ref["name"]))
        if secret is None:
            raise RegistryError(f"spec.passwordSecretRef: no Secret {ref['name']!r}")
        try:
            password = secret_value(secret, ref.get("key", "password"))
        except RegistryError as exc:
            raise RegistryError(f"spec.passwordSecretRef: {exc}") from None
        if password is None:
            raise RegistryError(f"spec.passwordSecretRef: Secret {ref['name']!r} has no key "
                                f"{ref.get('key', 'password')!r}")
        if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
            raise RegistryError(f"spec.passwordSecretRef: the password must be {PASSWORD_MIN}-"
                                f"{PASSWORD_MAX} characters")
    if profile in (1, 2) and password is None and password_hash is None:
        raise RegistryError(f"spec.password: required for securityProfile {profile} "
                            "(from passwordSecretRef, or inline in a file)")
    if password is not None and password_hash is None:
        password_hash = hash_password(password)
    auth = spec.get("authorization") or {}
    return StationEntry(
        station_id=spec.get("stationId", meta["name"]),
        enabled=spec.get("enabled", True),
        versions=tuple(normalize(p) for p in PROTOCOLS if p in spec.get("protocols", PROTOCOLS)),
        security_profile=profile,
        password_hash=password_hash,
        heartbeat_interval=spec.get("heartbeatInterval", 300),
        accept_all=auth.get("acceptAll", False),
        id_tokens=frozenset(auth.get("idTokens", [])),
        configuration={k: config_value(v) for k, v in (spec.get("configuration") or {}).items()},
        name=meta["name"],
        namespace=meta.get("namespace"),
    )


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
    if not path.exists():
        raise RegistryError(f"{path}: no such file or folder")
    return [path]


def load_stations(path: str | Path) -> list[StationEntry]:
    documents: list[tuple[str, Any]] = []
    secrets: dict[tuple[str | None, str], Mapping[str, Any]] = {}
    for file in _files(Path(path)):
        try:
            docs = list(yaml.safe_load_all(file.read_text()))
        except yaml.YAMLError as exc:
            # Only where and what: PyYAML's own message quotes the lines around the fault.
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise RegistryError(f"{file}: not valid YAML{where}: {problem}") from None
        for index, doc in enumerate(docs, start=1):
            if doc is None:
                continue  # an empty document between separators
            name = doc.get("metadata", {}).get("name") if isinstance(doc, dict) else None
            where = f"{file} document {index}" + (f" ({name})" if name else "")
            kind = doc.get("kind") if isinstance(doc, dict) else None
            if kind == "Secret" and name:
                secrets[(doc["metadata"].get("namespace"), name)] = doc
            elif kind in (None, "ChargingStation"):
                documents.append((where, doc))
            # other Kubernetes objects may share the folder
    entries: dict[str, StationEntry] = {}
    for where, doc in documents:
        try:
            entry = entry_from_manifest(doc, secrets=secrets)
        except RegistryError as exc:
            raise RegistryError(f"{where}: {exc}") from None
        if entry.station_id in entries:
            raise RegistryError(f"{where}: station id {entry.station_id!r} is defined twice")
        entries[entry.station_id] = entry
    return list(entries.values())
