"""DataTransfer: UnknownVendorId, unless an application router handles DataTransfer."""

from typing import Any

from csms.protocol.router import Context, Router
from csms.services import Services


def router(services: Services) -> Router:
    r = Router()

    @r.on("DataTransfer")
    def data_transfer(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        return {"status": "UnknownVendorId"}

    return r
