"""Handlers and how they are found: `Router`, the per-version `RouteTable`, the `Context`.

    router = Router()

    @router.on("Authorize")
    async def authorize(payload: dict, context: Context) -> dict:
        return {"idTokenInfo": {"status": "Accepted"}}

A handler gets the validated payload as a dict, or as the `ocpp` call dataclass when its first
parameter is annotated with one, and may return a dict, an `ocpp` call_result dataclass or
None (an empty payload). Sync handlers run inline; async ones may await anything, including
`context.call(...)` to the same station.
"""

import dataclasses
import inspect
import logging
import typing
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol

from ocpp.charge_point import (
    camel_to_snake_case,
    remove_nones,
    serialize_as_dict,
    snake_to_camel_case,
)

from csms.protocol import schemas
from csms.protocol.versions import VERSIONS, normalize

Handler = Callable[..., Any]
Payload = dict[str, Any]


class Caller(Protocol):
    """What a context needs of the connection: a way to call the station."""

    async def call(self, action: str, payload: Payload, timeout: float | None = None) -> Payload:
        ...

    async def send_unconfirmed(self, action: str, payload: Payload) -> None:
        ...


class Context:
    """What a handler knows about the station it serves and how it reaches it."""

    __slots__ = ("_caller", "_log", "station", "station_id", "version")

    def __init__(
        self,
        station_id: str,
        version: str,
        caller: Caller,
        station: Any = None,
        log: logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        self.station_id = station_id
        self.version = version
        # The station's registry entry (csms.state.registry.StationEntry) when the app has one.
        self.station = station
        self._caller = caller
        self._log = log

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger bound to the station (made on first use: most connections never log)."""
        if self._log is None:
            self._log = logging.LoggerAdapter(logging.getLogger("csms.station"),
                                              {"station": self.station_id})
        return self._log

    async def call(
        self, action: Any, payload: Any = None, *, timeout: float | None = None
    ) -> Payload:
        """Send a CALL to the station and return its CALLRESULT payload.

        `action` is a name, an `ocpp` Action enum, or an `ocpp` call dataclass (then its
        class name is the action and its fields the payload). Raises `CallErrorReceived`,
        `CallTimeout`, `ResponseInvalid`, `PayloadInvalid` or `NotConnected`.
        """
        name, body = outbound(action, payload)
        return await self._caller.call(name, body, timeout)

    async def send(self, action: Any, payload: Any = None) -> None:
        """OCPP 2.1 SEND: an unconfirmed message, no reply expected."""
        name, body = outbound(action, payload)
        await self._caller.send_unconfirmed(name, body)


def outbound(action: Any, payload: Any) -> tuple[str, Payload]:
    if dataclasses.is_dataclass(action) and not isinstance(action, type):
        return type(action).__name__, to_payload(action)
    return str(getattr(action, "value", action)), to_payload(payload)


def to_payload(value: Any) -> Payload:
    """A handler's return value as an OCPP payload dict."""
    if type(value) is dict:
        return value
    if value is None:
        return {}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return typing.cast(Payload, snake_to_camel_case(remove_nones(serialize_as_dict(value))))
    if isinstance(value, dict):
        return dict(value)
    raise TypeError(f"a handler must return a dict, an ocpp dataclass or None, not {value!r}")


class Router:
    """An explicit registry of handlers; give it to `create_app(routers=[...])`."""

    def __init__(self) -> None:
        self.handlers: dict[tuple[str | None, str], Handler] = {}
        self.after_hooks: dict[tuple[str | None, str], list[Handler]] = {}

    @staticmethod
    def _key(action: Any, version: str | None) -> tuple[str | None, str]:
        return (normalize(version) if version else None, str(getattr(action, "value", action)))

    def on(self, action: Any, *, version: str | None = None) -> Callable[[Handler], Handler]:
        """Handle `action` (for one version, or all when `version` is None)."""
        key = self._key(action, version)

        def register(fn: Handler) -> Handler:
            if key in self.handlers:
                raise ValueError(f"{key[1]} already has a handler for version {key[0] or 'any'}")
            self.handlers[key] = fn
            return fn

        return register

    def after(self, action: Any, *, version: str | None = None) -> Callable[[Handler], Handler]:
        """Run `fn(payload, response, context)` after the reply to `action` is sent."""
        key = self._key(action, version)

        def register(fn: Handler) -> Handler:
            self.after_hooks.setdefault(key, []).append(fn)
            return fn

        return register


def _payload_type(fn: Handler) -> type | None:
    params = list(inspect.signature(fn).parameters.values())
    if not params:
        raise TypeError(f"handler {fn.__qualname__} must take (payload, context)")
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        return None
    hint = hints.get(params[0].name)
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


class Route:
    """One action of one version: its handler, validators and after-hooks, prepared once."""

    __slots__ = ("action", "afters", "empty_response_valid", "handler", "is_async",
                 "payload_type", "request", "response")

    def __init__(self, version: str, action: str, handler: Handler, afters: Sequence[Handler]):
        self.action = action
        self.handler = handler
        self.is_async = inspect.iscoroutinefunction(handler)
        self.payload_type = _payload_type(handler)
        self.request = schemas.request(version, action)
        self.response = schemas.response(version, action)
        # Most answers to notifications are {}: check once whether that is valid.
        self.empty_response_valid = self.response is not None and self.response.accepts({})
        self.afters = tuple(afters)

    def invoke(self, payload: Payload, context: Context) -> Any:
        if self.payload_type is not None:
            return self.handler(self.payload_type(**camel_to_snake_case(payload)), context)
        return self.handler(payload, context)


AfterHook = Callable[[Payload, Payload, Context], Awaitable[None] | None]


class RouteTable:
    """Routers merged for one version: the first router with a handler wins, and within a
    router a handler for this version beats one for any version."""

    def __init__(self, version: str, routers: Iterable[Router]) -> None:
        self.version = version
        self.known = schemas.actions(version)
        routers = list(routers)
        self.routes: dict[str, Route] = {}
        names = {a for r in routers for (_, a) in [*r.handlers, *r.after_hooks]}
        for action in sorted(names):
            if action not in self.known:
                continue  # defined for another version only
            handler = _first(routers, version, action)
            if handler is None:
                continue
            afters = [
                fn
                for r in routers
                for key in ((None, action), (version, action))
                for fn in r.after_hooks.get(key, [])
            ]
            self.routes[action] = Route(version, action, handler, afters)

    def get(self, action: str) -> Route | None:
        return self.routes.get(action)


def _first(routers: Sequence[Router], version: str, action: str) -> Handler | None:
    for router in routers:
        handler = router.handlers.get((version, action)) or router.handlers.get((None, action))
        if handler is not None:
            return handler
    return None


def tables(routers: Sequence[Router]) -> dict[str, RouteTable]:
    return {v: RouteTable(v, routers) for v in VERSIONS}
