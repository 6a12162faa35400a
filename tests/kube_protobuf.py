"""The protobuf bodies client-go's typed clients send (Helm's release records are Secrets
written that way), read into the JSON form the emulator stores (tests/kube_mock.py).

Only the kinds Helm and kubectl send as protobuf are read: Secret, ConfigMap, Namespace and
DeleteOptions. The field numbers are those of k8s.io/api's generated.proto files. A body in
the envelope (`k8s\\x00`, then runtime.Unknown) names its kind; a DeleteOptions body may come
without it.
"""

import base64
import datetime
from collections.abc import Callable, Iterator
from typing import Any

MAGIC = b"k8s\x00"
Fields = list[tuple[int, int | bytes]]


class ProtobufError(ValueError):
    """A body this reader does not understand: the emulator answers 415."""


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    at = 0
    while at < len(data):
        tag, at = _varint(data, at)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, at = _varint(data, at)
            yield number, value
        elif wire == 2:
            size, at = _varint(data, at)
            yield number, data[at:at + size]
            at += size
        elif wire in (1, 5):  # fixed 64 and 32 bits: no field read here uses them
            at += 8 if wire == 1 else 4
        else:
            raise ProtobufError(f"wire type {wire}")


def _text(value: int | bytes) -> str:
    assert isinstance(value, bytes)
    return value.decode()


def _map(entries: list[int | bytes], decode: Callable[[bytes], Any]) -> dict[str, Any]:
    result = {}
    for entry in entries:
        assert isinstance(entry, bytes)
        parts = dict(_fields(entry))
        result[_text(parts.get(1, b""))] = decode(parts.get(2, b""))  # type: ignore[arg-type]
    return result


def _group(data: bytes) -> dict[int, list[int | bytes]]:
    grouped: dict[int, list[int | bytes]] = {}
    for number, value in _fields(data):
        grouped.setdefault(number, []).append(value)
    return grouped


def _time(data: bytes) -> str:
    seconds = dict(_fields(data)).get(1, 0)
    assert isinstance(seconds, int)
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _owner(data: bytes) -> dict[str, Any]:
    f = dict(_fields(data))
    owner: dict[str, Any] = {"kind": _text(f.get(1, b"")), "name": _text(f.get(3, b"")),
                             "uid": _text(f.get(4, b"")), "apiVersion": _text(f.get(5, b""))}
    if 6 in f:
        owner["controller"] = bool(f[6])
    return owner


def _metadata(data: bytes) -> dict[str, Any]:
    f = _group(data)
    meta: dict[str, Any] = {}
    for number, name in ((1, "name"), (2, "generateName"), (3, "namespace"), (5, "uid"),
                         (6, "resourceVersion")):
        if f.get(number) and f[number][0]:
            meta[name] = _text(f[number][0])
    if f.get(8) and f[8][0]:
        meta["creationTimestamp"] = _time(f[8][0])  # type: ignore[arg-type]
    if f.get(11):
        meta["labels"] = _map(f[11], bytes.decode)
    if f.get(12):
        meta["annotations"] = _map(f[12], bytes.decode)
    if f.get(13):
        meta["ownerReferences"] = [_owner(o) for o in f[13]]  # type: ignore[arg-type]
    if f.get(14):
        meta["finalizers"] = [_text(v) for v in f[14]]
    return meta


def _secret(f: dict[int, list[int | bytes]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    if f.get(2):
        obj["data"] = _map(f[2], lambda b: base64.b64encode(b).decode())
    if f.get(3):
        obj["type"] = _text(f[3][0])
    if f.get(4):
        obj["stringData"] = _map(f[4], bytes.decode)
    if f.get(5):
        obj["immutable"] = bool(f[5][0])
    return obj


def _configmap(f: dict[int, list[int | bytes]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    if f.get(2):
        obj["data"] = _map(f[2], bytes.decode)
    if f.get(3):
        obj["binaryData"] = _map(f[3], lambda b: base64.b64encode(b).decode())
    if f.get(4):
        obj["immutable"] = bool(f[4][0])
    return obj


def _namespace(f: dict[int, list[int | bytes]]) -> dict[str, Any]:
    return {"spec": {}}


def _delete_options(f: dict[int, list[int | bytes]]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if f.get(1):
        options["gracePeriodSeconds"] = f[1][0]
    if f.get(4):
        options["propagationPolicy"] = _text(f[4][0])
    if f.get(5):
        options["dryRun"] = [_text(v) for v in f[5]]
    return options


READERS: dict[str, Callable[[dict[int, list[int | bytes]]], dict[str, Any]]] = {
    "Secret": _secret, "ConfigMap": _configmap, "Namespace": _namespace,
    "DeleteOptions": _delete_options,
}


def decode(body: bytes, kind: str | None = None) -> dict[str, Any]:
    """A protobuf body as JSON. `kind` is what the URL implies when there is no envelope."""
    api_version = ""
    if body.startswith(MAGIC):
        envelope = dict(_fields(body[len(MAGIC):]))
        type_meta = dict(_fields(envelope.get(1, b"")))  # type: ignore[arg-type]
        api_version = _text(type_meta.get(1, b""))
        kind = _text(type_meta.get(2, b"")) or kind
        raw = envelope.get(2, b"")
        assert isinstance(raw, bytes)
        body = raw
    if kind not in READERS:
        raise ProtobufError(f"protobuf bodies of kind {kind!r} are not read by the emulator")
    fields = _group(body)
    obj = READERS[kind](fields)
    if kind != "DeleteOptions":
        obj["metadata"] = _metadata(fields[1][0]) if fields.get(1) else {}  # type: ignore[arg-type]
    if api_version:
        obj.update(apiVersion=api_version, kind=kind)
    return obj
