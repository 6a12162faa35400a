"""OCPP-J frames: reading a frame's envelope and writing the five kinds of frame.

Frames are plain JSON arrays; they stay lists after parsing (no object per message).
"""

from typing import Any, Final

import orjson

from csms.protocol.errors import ErrorCode, FrameError

CALL: Final = 2
CALLRESULT: Final = 3
CALLERROR: Final = 4
CALLRESULTERROR: Final = 5  # OCPP 2.1
SEND: Final = 6  # OCPP 2.1

MAX_ID_LENGTH: Final = 36  # messageId is string[36] in every version
# The deepest official payload (2.x ReportChargingProfiles) is 14 levels inside its frame.
# Deeper frames are refused before anything walks them: jsonschema-rs and orjson.dumps give
# up past 255 levels and repr() near 1,000, while orjson.loads reads up to 1,024.
DEFAULT_MAX_DEPTH: Final = 32


def valid_id(value: Any) -> bool:
    return type(value) is str and 0 < len(value) <= MAX_ID_LENGTH


def parse(text: str | bytes) -> list[Any]:
    """Decode a frame and check its envelope: a non-empty array with an integer type."""
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise FrameError(ErrorCode.RPC_FRAMEWORK_ERROR, "frame is not valid JSON") from None
    if type(frame) is not list or not frame:
        raise FrameError(ErrorCode.RPC_FRAMEWORK_ERROR, "frame is not a non-empty JSON array")
    if type(frame[0]) is not int:
        message_id = frame[1] if len(frame) > 1 and valid_id(frame[1]) else "-1"
        raise FrameError(
            ErrorCode.RPC_FRAMEWORK_ERROR, "message type is not an integer", message_id
        )
    return frame


def too_deep(text: str | bytes, frame: Any, limit: int) -> bool:
    """Whether the parsed `frame` nests arrays and objects more than `limit` levels deep
    (the frame's own array is level 1)."""
    # Nesting cannot exceed the number of opening brackets: most frames stop here, at the
    # cost of two C scans; only larger ones are walked.
    if isinstance(text, str):
        openers = text.count("[") + text.count("{")
    else:
        openers = text.count(b"[") + text.count(b"{")
    if openers <= limit:
        return False
    stack: list[tuple[Any, int]] = [(frame, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if type(node) is dict else node:
            if type(child) is list or type(child) is dict:
                stack.append((child, depth + 1))
    return False


def _dumps(frame: list[Any]) -> str:
    return orjson.dumps(frame).decode()


def call(message_id: str, action: str, payload: dict[str, Any]) -> str:
    return _dumps([CALL, message_id, action, payload])


def result(message_id: str, payload: dict[str, Any]) -> str:
    return _dumps([CALLRESULT, message_id, payload])


def error(message_id: str, code: str, description: str, details: dict[str, Any]) -> str:
    return _dumps([CALLERROR, message_id, code, description, details])


def result_error(message_id: str, code: str, description: str, details: dict[str, Any]) -> str:
    return _dumps([CALLRESULTERROR, message_id, code, description, details])


def send(message_id: str, action: str, payload: dict[str, Any]) -> str:
    return _dumps([SEND, message_id, action, payload])
