"""csms: an OCPP-J central system on an ASGI engine.

The engine lives in `csms.protocol` (sans-I/O) and `csms.web` (ASGI adapters); the central
system's own behaviour in `csms.handlers`. Most users need only these names.
"""

from csms.protocol.errors import (
    CallErrorReceived,
    CallTimeout,
    ErrorCode,
    NotConnected,
    OcppException,
    PayloadInvalid,
    ResponseInvalid,
    RpcError,
)
from csms.protocol.router import Context, Router

__all__ = [
    "CallErrorReceived",
    "CallTimeout",
    "Context",
    "ErrorCode",
    "NotConnected",
    "OcppException",
    "PayloadInvalid",
    "ResponseInvalid",
    "Router",
    "RpcError",
    "create_app",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # The ASGI layer pulls in uvicorn-side dependencies; import it only when asked for.
    if name == "create_app":
        from csms.web.app import create_app

        return create_app
    raise AttributeError(name)
