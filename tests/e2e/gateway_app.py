"""A central system embedding csms with a handler of its own, run as a gateway-mode backend
(`uvicorn tests.e2e.gateway_app:app --factory`, CSMS_* from the environment): its
DataTransfer handler calls the station back before it answers."""

from typing import Any

import orjson

from csms import Context, Router, create_app

router = Router()


@router.on("DataTransfer", version="1.6")
async def data_transfer(payload: dict[str, Any], context: Context) -> dict[str, Any]:
    if payload.get("messageId") != "ask-back":
        return {"status": "UnknownMessageId"}
    answer = await context.call("GetConfiguration", {"key": [payload.get("data", "")]})
    return {"status": "Accepted", "data": orjson.dumps(answer).decode()}


def app() -> Any:
    return create_app([router])
