"""The official OCPP JSON schemas (bundled with the `ocpp` package), compiled once.

Validation runs inline with jsonschema-rs compiled validators: about a microsecond per
message, so it needs no thread pool. A schema failure becomes an `RpcError` whose code
follows the OCPP-J error definitions of the station's version (see `_code_for`).
"""

import functools
import json
from pathlib import Path
from typing import Any, Final

import jsonschema_rs
import ocpp

from csms.protocol.errors import ErrorCode, RpcError
from csms.protocol.versions import V16, VERSIONS

_ROOT: Final = Path(ocpp.__file__).parent
_DIRS: Final = {"1.6": "v16", "2.0.1": "v201", "2.1": "v21"}


def _request_suffix(version: str) -> str:
    return "" if version == V16 else "Request"


@functools.cache
def actions(version: str) -> frozenset[str]:
    """Every action the version defines, in either direction."""
    folder = _ROOT / _DIRS[version] / "schemas"
    return frozenset(
        p.stem.removesuffix("Response").removesuffix("Request") for p in folder.glob("*.json")
    )


@functools.cache
def send_only(version: str) -> frozenset[str]:
    """Actions that only travel as OCPP 2.1 SEND: they have no response schema."""
    folder = _ROOT / _DIRS[version] / "schemas"
    return frozenset(a for a in actions(version) if not (folder / f"{a}Response.json").exists())


@functools.cache
def _validator(version: str, name: str) -> Any:
    path = _ROOT / _DIRS[version] / "schemas" / f"{name}.json"
    schema = json.loads(path.read_text(encoding="utf-8-sig"))
    return jsonschema_rs.validator_for(schema, validate_formats=True)


class Validator:
    """Checks one message kind of one version; `check` raises `RpcError`."""

    __slots__ = ("_validator", "_version", "name")

    def __init__(self, version: str, name: str) -> None:
        self._version = version
        self._validator = _validator(version, name)
        self.name = name

    def accepts(self, payload: Any) -> bool:
        try:
            return bool(self._validator.is_valid(payload))
        except ValueError:  # nested beyond what jsonschema-rs converts (about 255 levels)
            return False

    def check(self, payload: Any) -> None:
        # is_valid is the fast path; the error is built only for the rare bad payload.
        try:
            if self._validator.is_valid(payload):
                return
            error = next(iter(self._validator.iter_errors(payload)))
        except ValueError:
            # Sessions refuse such frames first (CSMS_MAX_DEPTH); this guards other callers.
            raise RpcError(ErrorCode.FORMAT_VIOLATION,
                           "payload is nested too deeply to validate") from None
        path = "/" + "/".join(str(p) for p in error.instance_path)
        kind = type(error.kind).__name__
        raise RpcError(
            _code_for(kind, self._version),
            f"{path}: {error.message}",
            {"path": path, "keyword": kind},
        )


@functools.cache
def request(version: str, action: str) -> Validator:
    if action in send_only(version):
        return Validator(version, action)  # e.g. 2.1 NotifyPeriodicEventStream.json
    return Validator(version, action + _request_suffix(version))


@functools.cache
def response(version: str, action: str) -> Validator | None:
    if action in send_only(version):
        return None
    return Validator(version, action + "Response")


# Each schema keyword read against the error definitions of OCPP-J (1.6 §4.2.3, 2.0.1 §4.3).
_OCCURRENCE = {"MinItems", "MaxItems", "MinProperties", "MaxProperties", "UniqueItems"}
_TYPE = {"Type", "MaxLength", "MinLength", "Format"}  # string[N] and dateTime are data types
_PROPERTY = {
    "Enum", "Pattern", "Minimum", "Maximum", "ExclusiveMinimum", "ExclusiveMaximum",
    "MultipleOf", "Constant",
}


def _code_for(kind: str, version: str) -> ErrorCode:
    if kind == "Required":
        # 1.6: "ProtocolError: payload for action is incomplete"; 2.x: a cardinality violation.
        if version == V16:
            return ErrorCode.PROTOCOL_ERROR
        return ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION
    if kind == "AdditionalProperties":
        # 1.6 FormationViolation covers "not conform the PDU structure"; 2.x names it ProtocolError.
        if version == V16:
            return ErrorCode.FORMAT_VIOLATION
        return ErrorCode.PROTOCOL_ERROR
    if kind in _TYPE:
        return ErrorCode.TYPE_CONSTRAINT_VIOLATION
    if kind in _OCCURRENCE:
        return ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION
    if kind in _PROPERTY:
        return ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    return ErrorCode.FORMAT_VIOLATION


def warm(version: str) -> None:
    """Compile every validator of a version (a few milliseconds) so no call pays for it."""
    for action in actions(version):
        request(version, action)
        response(version, action)


__all__ = ["VERSIONS", "Validator", "actions", "request", "response", "warm"]
