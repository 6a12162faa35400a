"""ASGI adapters around the OCPP core: the websocket endpoint, HTTP-posted frames, the REST
API, metrics, and the root app that routes between them."""
