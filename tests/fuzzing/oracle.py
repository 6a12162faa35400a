"""What the answer to any frame a station sends must be: the invariants the fuzzers check.

Written from the OCPP-J specifications (1.6 §4.2.3, 2.0.1 §4.3, 2.1 §4.3), not from csms's
code: a fresh session with nothing pending answers

- every CALL with exactly one CALLRESULT or CALLERROR carrying its message id ("-1" when the
  id is unreadable), and anything unreadable or of an unknown type with one CALLERROR;
- a CALLRESULT or CALLERROR (nothing of ours is pending) and, in 2.1, a SEND or a
  CALLRESULTERROR with nothing at all;
- with error codes of the station's own version, never InternalError (the handlers are
  csms's own: an InternalError is a bug found), and with results that pass the official
  response schema.
"""

from typing import Any

import orjson

from csms.protocol import schemas

CODES_16 = frozenset({
    "NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError",
    "FormationViolation", "PropertyConstraintViolation", "OccurenceConstraintViolation",
    "TypeConstraintViolation", "GenericError"})
CODES_2X = frozenset({
    "FormatViolation", "GenericError", "InternalError", "MessageTypeNotSupported",
    "NotImplemented", "NotSupported", "OccurrenceConstraintViolation",
    "PropertyConstraintViolation", "ProtocolError", "RpcFrameworkError", "SecurityError",
    "TypeConstraintViolation"})
CODES = {"1.6": CODES_16, "2.0.1": CODES_2X, "2.1": CODES_2X}


class Violation(AssertionError):
    pass


def _readable_id(frame: list[Any]) -> str:
    candidate = frame[1] if len(frame) > 1 else None
    return candidate if type(candidate) is str and 0 < len(candidate) <= 36 else "-1"


def expected_id(version: str, text: str | bytes) -> str | None:
    """The message id of the one reply the frame must get; None when it gets none."""
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError:
        return "-1"
    if type(frame) is not list or not frame:
        return "-1"
    kind = frame[0]
    if type(kind) is int and (kind in (3, 4) or (version == "2.1" and kind in (5, 6))):
        return None
    return _readable_id(frame)


def check(version: str, text: str | bytes, sent: list[str]) -> None:
    """Raise `Violation` when `sent` (every frame the session wrote) breaks an invariant."""
    replies = [f for f in (orjson.loads(s) for s in sent) if f[0] != 2]  # not our own CALLs
    want = expected_id(version, text)
    if want is None:
        if replies:
            raise Violation(f"no reply was due, got {replies!r}")
        return
    if len(replies) != 1:
        raise Violation(f"one reply with id {want!r} was due, got {replies!r}")
    reply = replies[0]
    if reply[1] != want:
        raise Violation(f"reply id {reply[1]!r}, expected {want!r}")
    if reply[0] == 4:
        if len(reply) != 5 or not isinstance(reply[3], str) or len(reply[3]) > 255 \
                or not isinstance(reply[4], dict):
            raise Violation(f"malformed CALLERROR {reply!r}")
        if reply[2] not in CODES[version]:
            raise Violation(f"{reply[2]!r} is not an OCPP {version} error code")
        if reply[2] == "InternalError":
            raise Violation(f"a handler failed: {reply!r}")
    elif reply[0] == 3:
        action = orjson.loads(text)[2]
        validator = schemas.response(version, action)
        if len(reply) != 3 or validator is None or not validator.accepts(reply[2]):
            raise Violation(f"CALLRESULT for {action} fails its schema: {reply!r}")
    else:
        raise Violation(f"reply of type {reply[0]!r}")
