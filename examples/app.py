"""A central system with behaviour of your own, served by any ASGI server:

    .venv/bin/uvicorn examples.app:app --port 9100   # beside `make run` on 9000

Your routers come first; the central system's own handlers answer everything else.
"""

from typing import Any

from ocpp.v201.enums import Action

from csms import Context, Router, create_app
from csms.config import Settings

router = Router()
FLEET_CARDS = {"FLEET-001", "FLEET-002"}


@router.on(Action.authorize, version="2.0.1")
async def authorize(payload: dict[str, Any], context: Context) -> dict[str, Any]:
    token = payload["idToken"]["idToken"]
    status = "Accepted" if token in FLEET_CARDS else "Invalid"
    context.log.info("authorize %s: %s", token, status)
    return {"idTokenInfo": {"status": status}}


@router.on("DataTransfer")
def data_transfer(payload: dict[str, Any], context: Context) -> dict[str, Any]:
    return {"status": "Accepted", "data": f"hello {context.station_id}"}


@router.after("BootNotification")
async def ask_firmware(payload: dict[str, Any], response: dict[str, Any],
                       context: Context) -> None:
    if context.version != "1.6":  # calling the station from a hook: frames keep flowing
        result = await context.call("GetVariables", {"getVariableData": [
            {"component": {"name": "Firmware"}, "variable": {"name": "Version"}}]})
        context.log.info("firmware: %s", result["getVariableResult"][0])


app = create_app([router], settings=Settings(accept_unknown=True))
