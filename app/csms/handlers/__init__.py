"""The central system's own OCPP behaviour, one module per functional block.

Each module's `router(services)` returns a `Router` whose handlers close over the shared
services; `central_system(services)` returns them all.
"""

from csms.handlers import (
    authorization,
    availability,
    data_transfer,
    diagnostics,
    provisioning,
    transactions,
)
from csms.protocol.router import Router
from csms.services import Services

BLOCKS = (provisioning, availability, authorization, transactions, diagnostics, data_transfer)


def central_system(services: Services) -> list[Router]:
    return [block.router(services) for block in BLOCKS]
