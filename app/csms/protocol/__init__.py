"""The OCPP-J core: frames, schemas, errors, routing and per-station sessions.

Nothing here touches sockets, ASGI or Redis: a `Session` is fed received text and given an
async `send` callable, so the whole protocol is tested with literal frames.
"""
