"""One station's OCPP-J conversation, without I/O.

The adapter calls `receive(text)` for every text frame and gives the session an async `send`.
`receive` never blocks: handlers run inline until they wait (see `eager`), so replies to our
own CALLs are matched while a handler awaits the station. Our CALLs go out one at a time per
station (OCPP-J §4.1.1), the rest wait in order on a FIFO lock.
"""

import asyncio
import contextvars
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from csms.protocol import frames, schemas
from csms.protocol.eager import run_eagerly
from csms.protocol.errors import (
    KNOWN_CODES,
    CallErrorReceived,
    CallTimeout,
    ErrorCode,
    FrameError,
    NotConnected,
    PayloadInvalid,
    ResponseInvalid,
    RpcError,
)
from csms.protocol.router import Context, Payload, Route, RouteTable, to_payload
from csms.protocol.versions import V21

Sender = Callable[[str], Awaitable[None]]
logger = logging.getLogger("csms.station")

# Unique across processes (random prefix) and within one (counter): fits string[36].
_ids = itertools.count(1)
_prefix = os.urandom(4).hex()


def next_message_id() -> str:
    return f"{_prefix}-{next(_ids)}"


class SessionHooks(Protocol):
    """What the session reports: metrics and events hang off these."""

    def inbound(self, version: str, action: str, outcome: str, seconds: float) -> None:
        """A station CALL (or SEND) was answered; outcome is 'ok' or the CALLERROR code."""

    def outbound(self, version: str, action: str, outcome: str, seconds: float) -> None:
        """Our CALL finished: 'ok', the station's error code, 'timeout', 'invalid', 'closed'."""

    def accepted(self, station_id: str, version: str, action: str, payload: Payload) -> None:
        """A station message was accepted (answered with a CALLRESULT, or a valid SEND)."""

    def unexpected(self, version: str, kind: str) -> None:
        """A frame that matched nothing: a late reply, an unknown id, a malformed reply."""


class TracedCall(Protocol):
    def activate(self) -> None:
        """Make the span current in the running context (one of its own)."""

    def end(self, error: str | None = None) -> None:
        """The call is over: None when it succeeded, else the CALLERROR code or why not."""


class CallTracer(Protocol):
    """Spans around calls (csms.observability.tracing); the session knows no tracing API."""

    def inbound(self, session: "Session", action: str, message_id: str) -> TracedCall | None:
        """A station's CALL or SEND begins; None when it is not sampled."""

    def outbound(self, session: "Session", action: str, message_id: str) -> TracedCall:
        """Our CALL to the station begins."""


class NoHooks:
    def inbound(self, version: str, action: str, outcome: str, seconds: float) -> None:
        pass

    def outbound(self, version: str, action: str, outcome: str, seconds: float) -> None:
        pass

    def accepted(self, station_id: str, version: str, action: str, payload: Payload) -> None:
        pass

    def unexpected(self, version: str, kind: str) -> None:
        pass


class _Pending:
    __slots__ = ("action", "future", "message_id")

    def __init__(self, message_id: str, action: str, future: "asyncio.Future[Payload]"):
        self.message_id = message_id
        self.action = action
        self.future = future


class Session:
    __slots__ = ("_call_lock", "_hooks", "_pending", "_send", "_table", "_tasks", "_tracer",
                 "call_timeout", "close_label", "closed", "connected_at", "context",
                 "last_message_at", "max_depth", "station_id", "trace_link", "version")

    def __init__(
        self,
        station_id: str,
        version: str,
        table: RouteTable,
        send: Sender,
        *,
        station: Any = None,
        hooks: SessionHooks | None = None,
        call_timeout: float = 30.0,
        max_depth: int = frames.DEFAULT_MAX_DEPTH,
        tracer: CallTracer | None = None,
    ) -> None:
        self.station_id = station_id
        self.version = version
        self._table = table
        self._send = send
        self._hooks: SessionHooks = hooks or NoHooks()
        self._tracer = tracer
        self.trace_link: Any = None  # the handshake's span context, which call spans link to
        self.call_timeout = call_timeout
        self.max_depth = max_depth
        self.context = Context(station_id, version, self, station)
        # Made on first use: an idle connection should cost as little memory as possible.
        self._tasks: set[asyncio.Task[Any]] | None = None
        self._call_lock: asyncio.Lock | None = None
        self._pending: _Pending | None = None
        self.closed: str | None = None  # the reason, once closed
        self.close_label = ""
        self.connected_at = time.time()
        self.last_message_at = self.connected_at

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        return self.context.log

    @property
    def known_actions(self) -> frozenset[str]:
        return self._table.known

    def _run(self, coro: Coroutine[Any, Any, None]) -> None:
        task = run_eagerly(coro)
        if task is not None:
            if self._tasks is None:
                self._tasks = set()
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # -- frames from the station ---------------------------------------------------------

    def receive(self, text: str | bytes) -> None:
        """Handle one frame. Every CALL gets exactly one CALLRESULT or CALLERROR, and no
        exception escapes, whatever the input."""
        self.last_message_at = time.time()
        if logger.isEnabledFor(logging.DEBUG):
            self.log.debug("received %s", text)
        try:
            frame = frames.parse(text)
        except FrameError as exc:
            self._reply_error(exc.message_id, exc)
            return
        try:
            # A frame of 2n+1 characters or fewer cannot nest deeper than n: short ones skip it.
            limit = self.max_depth
            if len(text) > 2 * limit + 1 and frames.too_deep(text, frame, limit):
                self._on_too_deep(frame)
            else:
                self._dispatch(frame)
        except Exception:
            # A bug of ours: nothing was answered or scheduled, so answer a CALL here.
            self.log.exception("frame handling failed")
            self._observe(self._hooks.unexpected, self.version, "internal")
            if frame[0] == frames.CALL and len(frame) > 1 and frames.valid_id(frame[1]):
                self._reply_error(frame[1], RpcError(ErrorCode.INTERNAL_ERROR, "internal error"))

    def _dispatch(self, frame: list[Any]) -> None:
        kind = frame[0]
        if kind == frames.CALL:
            self._on_call(frame)
        elif kind == frames.CALLRESULT:
            self._on_result(frame)
        elif kind == frames.CALLERROR:
            self._on_error(frame)
        elif kind == frames.SEND and self.version == V21:
            self._on_send(frame)
        elif kind == frames.CALLRESULTERROR and self.version == V21:
            self._on_result_error(frame)
        else:
            self._unsupported_type(frame)

    def _unsupported_type(self, frame: list[Any]) -> None:
        message_id = frame[1] if len(frame) > 1 and frames.valid_id(frame[1]) else "-1"
        self._reply_error(message_id, RpcError(
            ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED,
            f"message type {frame[0]} is not supported on OCPP {self.version}"))

    def _on_too_deep(self, frame: list[Any]) -> None:
        """A frame nested beyond `max_depth`: refused like a malformed one, never walked."""
        kind = frame[0]
        message_id = frame[1] if len(frame) > 1 and frames.valid_id(frame[1]) else "-1"
        error = RpcError(ErrorCode.FORMAT_VIOLATION,
                         f"frame is nested deeper than {self.max_depth} levels")
        pending = self._pending
        if kind in (frames.CALLRESULT, frames.CALLERROR) and pending is not None \
                and message_id == pending.message_id and not pending.future.done():
            pending.future.set_exception(ResponseInvalid(pending.action, error))
            if kind == frames.CALLRESULT and self.version == V21:
                self._run(self._write(frames.result_error(
                    message_id, error.code.wire(self.version), error.description, {})))
        elif kind == frames.CALL:
            self._reply_error(message_id, error)
        elif kind in (frames.CALLRESULT, frames.CALLERROR, frames.SEND) or (
                kind == frames.CALLRESULTERROR and self.version == V21):
            self.log.warning("dropped a frame of type %s nested deeper than %d levels",
                             kind, self.max_depth)
            self._observe(self._hooks.unexpected, self.version, "too_deep")
        else:
            self._unsupported_type(frame)

    def _on_call(self, frame: list[Any]) -> None:
        if len(frame) < 2 or not frames.valid_id(frame[1]):
            self._reply_error("-1", RpcError(
                ErrorCode.RPC_FRAMEWORK_ERROR, "message id is missing or not a string[36]"))
            return
        message_id = frame[1]
        if len(frame) != 4 or type(frame[2]) is not str:
            self._reply_error(message_id, RpcError(
                ErrorCode.RPC_FRAMEWORK_ERROR,
                "a CALL is [2, messageId, action, payload]"))
            return
        if type(frame[3]) is not dict:
            self._reply_error(message_id, RpcError(
                ErrorCode.FORMAT_VIOLATION, "payload is not a JSON object"))
            return
        traced = None if self._tracer is None else self._tracer.inbound(self, frame[2],
                                                                          message_id)
        if traced is None:
            self._run(self._handle_call(message_id, frame[2], frame[3], None))
        else:  # its span is current in a context of its own (and its task's copy of it)
            contextvars.copy_context().run(
                self._run_traced, traced, self._handle_call(message_id, frame[2], frame[3],
                                                            traced))

    def _run_traced(self, traced: TracedCall, coro: Coroutine[Any, Any, None]) -> None:
        traced.activate()
        self._run(coro)

    async def _handle_call(self, message_id: str, action: str, payload: Payload,
                           traced: TracedCall | None) -> None:
        # One coroutine per CALL, run eagerly: validation, handler, reply, metrics, events.
        start = time.perf_counter()
        route = self._table.routes.get(action)
        try:
            if route is None:
                raise self._unknown(action)
            route.request.check(payload)
            if route.response is None:
                raise RpcError(ErrorCode.NOT_SUPPORTED, f"{action} travels only as a SEND")
            try:
                result = route.invoke(payload, self.context)
                if route.is_async:
                    result = await result
            except RpcError:
                raise  # the handler's deliberate CALLERROR
            except Exception:
                self.log.exception("%s handler failed", action)
                raise RpcError(ErrorCode.INTERNAL_ERROR, "internal error") from None
            response = self._checked(route, result)
            reply = frames.result(message_id, response)
        except RpcError as exc:
            await self._refuse(message_id, action, exc, start, traced)
            return
        except Exception:  # ours, e.g. a response orjson cannot serialize: still one answer
            self.log.exception("%s could not be answered", action[:64])
            await self._refuse(message_id, action,
                               RpcError(ErrorCode.INTERNAL_ERROR, "internal error"), start,
                               traced)
            return
        if self.closed is None:  # inline _write: one coroutine less per message
            try:
                await self._send(reply)
            except Exception as exc:
                self.log.debug("send failed: %s", exc)
        try:
            self._hooks.inbound(self.version, action, "ok", time.perf_counter() - start)
            self._hooks.accepted(self.station_id, self.version, action, payload)
        except Exception:  # answered already: a failing observer must not end the session
            self.log.exception("reporting %s failed", action)
        if traced is not None:
            self._observe(traced.end)
        for hook in route.afters:
            self._run(self._after(hook, payload, response))

    async def _refuse(self, message_id: str, action: str, error: RpcError, start: float,
                      traced: TracedCall | None) -> None:
        code = error.code.wire(self.version)
        try:
            text = frames.error(message_id, code, error.description, error.details)
        except TypeError:  # a handler's details that are not JSON
            self.log.error("%s: errorDetails are not JSON; sent without them", action[:64])
            text = frames.error(message_id, code, error.description, {})
        await self._write(text)
        self._observe(self._hooks.inbound, self.version, self._label(action), code,
                      time.perf_counter() - start)
        if traced is not None:
            self._observe(traced.end, code)

    def _label(self, action: str) -> str:
        # Action names a station invents must not become metric series of their own.
        return action if action in self._table.known else "unknown"

    def _unknown(self, action: str) -> RpcError:
        if action in self._table.known:
            return RpcError(ErrorCode.NOT_SUPPORTED, f"{action} is not supported here")
        return RpcError(ErrorCode.NOT_IMPLEMENTED, f"{action} is not an OCPP {self.version} action")

    def _checked(self, route: Route, result: Any) -> Payload:
        """The handler's result as a payload the response schema accepts."""
        try:
            response = to_payload(result)
        except TypeError:
            self.log.exception("%s handler returned an unusable value", route.action)
            raise RpcError(ErrorCode.INTERNAL_ERROR, "internal error") from None
        if route.response is None or (not response and route.empty_response_valid):
            return response
        try:
            route.response.check(response)
        except RpcError as exc:
            # Our handler produced a payload the schema rejects: our bug, never sent on.
            self.log.error("%s handler returned an invalid payload: %s", route.action,
                           exc.description)
            raise RpcError(ErrorCode.INTERNAL_ERROR, "internal error") from None
        return response

    async def _after(self, hook: Any, payload: Payload, response: Payload) -> None:
        try:
            result = hook(payload, response, self.context)
            if asyncio.iscoroutine(result):
                await result
        except Exception:
            self.log.exception("after-hook %s failed", getattr(hook, "__qualname__", hook))

    def _on_send(self, frame: list[Any]) -> None:
        # SEND is never answered, not even when it is malformed (OCPP-J 2.1 §4.2.4).
        if (len(frame) != 4 or not frames.valid_id(frame[1]) or type(frame[2]) is not str
                or type(frame[3]) is not dict):
            self._observe(self._hooks.unexpected, self.version, "malformed_send")
            return
        traced = None if self._tracer is None else self._tracer.inbound(self, frame[2],
                                                                          frame[1])
        if traced is None:
            self._run(self._handle_send(frame[2], frame[3], None))
        else:
            contextvars.copy_context().run(
                self._run_traced, traced, self._handle_send(frame[2], frame[3], traced))

    async def _handle_send(self, action: str, payload: Payload,
                           traced: TracedCall | None) -> None:
        start = time.perf_counter()
        route = self._table.routes.get(action)
        try:
            if route is None:
                raise self._unknown(action)
            route.request.check(payload)
            try:
                result = route.invoke(payload, self.context)
                if route.is_async:
                    await result
            except RpcError:
                raise
            except Exception:
                self.log.exception("%s handler failed", action)
                raise RpcError(ErrorCode.INTERNAL_ERROR, "internal error") from None
        except RpcError as exc:
            self.log.warning("SEND %s dropped: %s", action[:64], exc)
            self._observe(self._hooks.inbound, self.version, self._label(action),
                          exc.code.wire(self.version), time.perf_counter() - start)
            if traced is not None:
                self._observe(traced.end, exc.code.wire(self.version))
            return
        try:
            self._hooks.inbound(self.version, action, "ok", time.perf_counter() - start)
            self._hooks.accepted(self.station_id, self.version, action, payload)
        except Exception:
            self.log.exception("reporting %s failed", action)
        if traced is not None:
            self._observe(traced.end)

    # -- replies to our CALLs ------------------------------------------------------------

    def _match(self, frame: list[Any], kind: str) -> _Pending | None:
        pending = self._pending
        if len(frame) < 2 or pending is None or frame[1] != pending.message_id \
                or pending.future.done():
            self.log.warning("unexpected %s %s", kind, str(frame)[:200])
            self._observe(self._hooks.unexpected, self.version, kind)
            return None
        return pending

    def _on_result(self, frame: list[Any]) -> None:
        pending = self._match(frame, "callresult")
        if pending is None:
            return
        payload = frame[2] if len(frame) == 3 else None
        try:
            if type(payload) is not dict:
                raise RpcError(ErrorCode.RPC_FRAMEWORK_ERROR,
                               "a CALLRESULT is [3, messageId, payload]")
            validator = schemas.response(self.version, pending.action)
            if validator is not None:
                validator.check(payload)
        except RpcError as exc:
            pending.future.set_exception(ResponseInvalid(pending.action, exc))
            if self.version == V21:
                self._run(self._write(frames.result_error(
                    pending.message_id, exc.code.wire(self.version), exc.description,
                    exc.details)))
            return
        pending.future.set_result(payload)

    def _on_error(self, frame: list[Any]) -> None:
        pending = self._match(frame, "callerror")
        if pending is None:
            return
        if (len(frame) != 5 or type(frame[2]) is not str or type(frame[3]) is not str
                or type(frame[4]) is not dict):
            pending.future.set_exception(ResponseInvalid(pending.action, RpcError(
                ErrorCode.RPC_FRAMEWORK_ERROR,
                "a CALLERROR is [4, messageId, errorCode, errorDescription, errorDetails]")))
            return
        if frame[2] not in KNOWN_CODES:
            self.log.warning("station sent unknown error code %r", frame[2])
        pending.future.set_exception(CallErrorReceived(frame[2], frame[3], frame[4]))

    def _on_result_error(self, frame: list[Any]) -> None:
        # The station says it rejected one of our CALLRESULTs: nothing to retry. A WARNING,
        # not an ERROR: any station can send one, and must not fill the error log with it.
        self.log.warning("station rejected our CALLRESULT: %s", str(frame)[:500])
        self._observe(self._hooks.unexpected, self.version, "callresulterror")

    # -- our CALLs to the station --------------------------------------------------------

    async def call(self, action: str, payload: Payload, timeout: float | None = None) -> Payload:
        """CALL the station and return its CALLRESULT payload (see `Context.call`)."""
        if action in schemas.send_only(self.version):
            raise PayloadInvalid(action, RpcError(
                ErrorCode.NOT_SUPPORTED, f"{action} travels only as a SEND"))
        if action not in schemas.actions(self.version):
            raise PayloadInvalid(action, RpcError(
                ErrorCode.NOT_IMPLEMENTED, f"{action} is not an OCPP {self.version} action"))
        try:
            schemas.request(self.version, action).check(payload)
        except RpcError as exc:
            raise PayloadInvalid(action, exc) from None
        if self._call_lock is None:
            self._call_lock = asyncio.Lock()
        async with self._call_lock:
            if self.closed is not None:
                raise NotConnected(f"{self.station_id}: {self.closed}")
            start = time.perf_counter()
            message_id = self._message_id()
            future: asyncio.Future[Payload] = asyncio.get_running_loop().create_future()
            self._pending = _Pending(message_id, action, future)
            traced = None if self._tracer is None else self._tracer.outbound(self, action,
                                                                               message_id)
            outcome = "ok"
            try:
                try:
                    await self._send(frames.call(message_id, action, payload))
                except Exception as exc:
                    raise NotConnected(f"{self.station_id}: send failed: {exc}") from None
                async with asyncio.timeout(self.call_timeout if timeout is None else timeout):
                    return await future
            except TimeoutError:
                outcome = "timeout"
                raise CallTimeout(f"{self.station_id} did not answer {action} in time") from None
            except CallErrorReceived as exc:
                outcome = exc.code
                raise
            except ResponseInvalid:
                outcome = "invalid"
                raise
            except NotConnected:
                outcome = "closed"
                raise
            finally:
                self._pending = None
                self._observe(self._hooks.outbound, self.version, action, outcome,
                              time.perf_counter() - start)
                if traced is not None:
                    self._observe(traced.end, None if outcome == "ok" else outcome)

    def _message_id(self) -> str:
        """The id of our next CALL (a gateway session uses the one it reserved)."""
        return next_message_id()

    async def send_unconfirmed(self, action: str, payload: Payload) -> None:
        if self.version != V21:
            raise PayloadInvalid(action, RpcError(
                ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED, "SEND exists only in OCPP 2.1"))
        try:
            if action not in schemas.actions(self.version):
                raise RpcError(ErrorCode.NOT_IMPLEMENTED, f"{action} is not an OCPP 2.1 action")
            schemas.request(self.version, action).check(payload)
        except RpcError as exc:
            raise PayloadInvalid(action, exc) from None
        if self.closed is not None:
            raise NotConnected(f"{self.station_id}: {self.closed}")
        await self._send(frames.send(next_message_id(), action, payload))

    # -- lifecycle -----------------------------------------------------------------------

    def close(self, reason: str, label: str = "closed") -> None:
        """Fail the pending and queued CALLs with `NotConnected(reason)`; `label` says why
        in a word, for the disconnect's log line and metric."""
        if self.closed is not None:
            return
        self.closed = reason
        self.close_label = label
        pending = self._pending
        if pending is not None and not pending.future.done():
            pending.future.set_exception(NotConnected(f"{self.station_id}: {reason}", sent=True))

    @property
    def busy(self) -> bool:
        """A handler, after-hook or one of our CALLs is still under way."""
        lock = self._call_lock
        return bool(self._tasks) or self._pending is not None or (
            lock is not None and lock.locked())

    async def idle(self) -> None:
        """Wait until every handler and after-hook started so far has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _write(self, text: str) -> None:
        if self.closed is not None:
            return
        try:
            await self._send(text)
        except Exception as exc:
            self.log.debug("send failed: %s", exc)

    def _observe(self, hook: Callable[..., None], *args: Any) -> None:
        # Metrics and events must never cost a station its answer or its connection.
        try:
            hook(*args)
        except Exception:
            self.log.exception("session hook %s failed", getattr(hook, "__name__", hook))

    def _reply_error(self, message_id: str, exc: RpcError) -> None:
        self._observe(self._hooks.inbound, self.version, "-", exc.code.wire(self.version), 0.0)
        self._run(self._write(frames.error(
            message_id, exc.code.wire(self.version), exc.description, exc.details)))
