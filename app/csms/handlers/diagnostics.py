"""Notifications the central system accepts and publishes as events: security events,
firmware, diagnostics and log status, device-model events."""

from typing import Any

from csms.protocol.router import Context, Router
from csms.services import Services

ACCEPTED_NOTIFICATIONS = (
    "SecurityEventNotification",
    "FirmwareStatusNotification",
    "DiagnosticsStatusNotification",
    "LogStatusNotification",
    "NotifyEvent",
)


def router(services: Services) -> Router:
    r = Router()

    def accept(payload: dict[str, Any], context: Context) -> None:
        return None  # the event bus carries the payload to whoever needs it

    for action in ACCEPTED_NOTIFICATIONS:
        r.on(action)(accept)
    return r
