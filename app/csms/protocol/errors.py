"""The exception tree of the OCPP core.

`RpcError` answers a station's CALL with a CALLERROR. Its `ErrorCode` is the OCPP 2.x name;
`ErrorCode.wire(version)` gives the name the station's version uses, because OCPP 1.6 spells
some codes differently and lacks others (see the README's bad-input table).
"""

from enum import StrEnum
from typing import Any

from csms.protocol.versions import V16


class ErrorCode(StrEnum):
    FORMAT_VIOLATION = "FormatViolation"
    GENERIC_ERROR = "GenericError"
    INTERNAL_ERROR = "InternalError"
    MESSAGE_TYPE_NOT_SUPPORTED = "MessageTypeNotSupported"
    NOT_IMPLEMENTED = "NotImplemented"
    NOT_SUPPORTED = "NotSupported"
    OCCURRENCE_CONSTRAINT_VIOLATION = "OccurrenceConstraintViolation"
    PROPERTY_CONSTRAINT_VIOLATION = "PropertyConstraintViolation"
    PROTOCOL_ERROR = "ProtocolError"
    RPC_FRAMEWORK_ERROR = "RpcFrameworkError"
    SECURITY_ERROR = "SecurityError"
    TYPE_CONSTRAINT_VIOLATION = "TypeConstraintViolation"

    def wire(self, version: str) -> str:
        """The code as the given OCPP version names it."""
        if version == V16:
            return _V16_NAMES.get(self, self.value)
        return self.value


# OCPP-J 1.6 §4.2.3 has FormationViolation (syntax or PDU structure) and the misspelt
# OccurenceConstraintViolation; it has no RpcFrameworkError or MessageTypeNotSupported, so
# frame-level faults map to FormationViolation, its code for a frame not conforming to the PDU.
_V16_NAMES: dict[ErrorCode, str] = {
    ErrorCode.FORMAT_VIOLATION: "FormationViolation",
    ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION: "OccurenceConstraintViolation",
    ErrorCode.RPC_FRAMEWORK_ERROR: "FormationViolation",
    ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED: "FormationViolation",
}

# Every code a station may send us, in either spelling.
KNOWN_CODES: frozenset[str] = frozenset(
    [c.value for c in ErrorCode] + list(_V16_NAMES.values())
)

MAX_DESCRIPTION = 255  # OCPP 2.x errorDescription is string[255]


class OcppException(Exception):
    """Base of every error raised by csms.protocol."""


class RpcError(OcppException):
    """Answer a CALL with a CALLERROR: raise it from a handler, or the core raises it."""

    def __init__(
        self, code: ErrorCode, description: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{code.value}: {description}")
        self.code = code
        self.description = description[:MAX_DESCRIPTION]
        self.details = details or {}


class FrameError(RpcError):
    """A frame that is not a readable CALL; `message_id` is '-1' when the id is unreadable."""

    def __init__(self, code: ErrorCode, description: str, message_id: str = "-1") -> None:
        super().__init__(code, description)
        self.message_id = message_id


class PayloadInvalid(OcppException):
    """A payload we were asked to send fails the official schema; nothing was sent."""

    def __init__(self, action: str, error: RpcError) -> None:
        super().__init__(f"{action} payload is invalid: {error.description}")
        self.action = action
        self.error = error


class CallErrorReceived(OcppException):
    """The station answered our CALL with a CALLERROR."""

    def __init__(self, code: str, description: str, details: dict[str, Any]) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.details = details


class ResponseInvalid(OcppException):
    """The station's CALLRESULT to our CALL fails the official schema."""

    def __init__(self, action: str, error: RpcError) -> None:
        super().__init__(f"{action} response is invalid: {error.description}")
        self.action = action
        self.error = error


class CallTimeout(OcppException, TimeoutError):
    """The station did not answer our CALL in time; the call slot is free again."""


class NotConnected(OcppException):
    """No open connection to the station, or it closed before answering; `sent` tells
    whether the CALL had gone out (the station may have acted on it)."""

    def __init__(self, message: str, sent: bool = False) -> None:
        super().__init__(message)
        self.sent = sent
