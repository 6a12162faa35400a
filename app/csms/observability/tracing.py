"""OpenTelemetry traces, configured only by the standard `OTEL_*` variables.

Tracing is on when an OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) and `OTEL_SDK_DISABLED` is not true; otherwise
`configure()` returns None and no code on the message path does anything but test for None.
The SDK reads the rest itself: `OTEL_SERVICE_NAME` (csms by default here),
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`, the
exporter's headers, timeout and compression, and the batch processor's `OTEL_BSP_*`.
Only `http/protobuf` is exported (`OTEL_EXPORTER_OTLP_PROTOCOL`, its default here).

Spans follow the OpenTelemetry RPC conventions (semantic conventions v1.39): a SERVER span
per CALL (and 2.1 SEND) from a station, named after its action, linked to the handshake's
span; a CLIENT span per CALL to a station; the handshake; each REST API request; and a call
routed through Redis to the pod holding the station, whose W3C trace context travels inside
the inbox message, so that an API call on one pod and the CALL on another are one trace.
"""

import logging
import os
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, use_span

__all__ = ["Tracing", "configure", "log_ids", "outcome_of", "use_span"]

if TYPE_CHECKING:
    from csms.protocol.session import Session

logger = logging.getLogger("csms.tracing")
SYSTEM = "ocpp"  # rpc.system.name
OTHER = "_OTHER"  # rpc.method of an action csms does not know (semantic conventions)
PROTOCOL = "http/protobuf"


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def configure() -> "Tracing | None":
    """The process's tracing, from the environment, or None when it is off."""
    if _env("OTEL_SDK_DISABLED").lower() == "true":
        return None
    exporters = _env("OTEL_TRACES_EXPORTER").lower() or "otlp"
    if exporters == "none":
        return None
    endpoint = _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or _env("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint:
        return None
    protocol = (_env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or _env("OTEL_EXPORTER_OTLP_PROTOCOL")
                or PROTOCOL)
    if exporters != "otlp" or protocol != PROTOCOL:
        logger.error("tracing is off: only the otlp exporter over %s is supported (set "
                     "OTEL_TRACES_EXPORTER=%s, OTEL_EXPORTER_OTLP_PROTOCOL=%s)", PROTOCOL,
                     exporters, protocol)
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    resource = Resource.create({} if _env("OTEL_SERVICE_NAME") else {SERVICE_NAME: "csms"})
    ids = PresetIds()
    # The sampler from OTEL_TRACES_SAMPLER and its argument.
    provider = TracerProvider(resource=resource, id_generator=ids)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    logger.info("tracing to %s", endpoint)
    return Tracing(provider, ids, root_ratio())


def root_ratio() -> float | None:
    """The share of new traces the configured sampler keeps, when it is a ratio (or off)."""
    sampler = _env("OTEL_TRACES_SAMPLER").lower() or "parentbased_always_on"
    if sampler in ("always_off", "parentbased_always_off"):
        return 0.0
    if sampler in ("traceidratio", "parentbased_traceidratio"):
        try:
            return min(max(float(_env("OTEL_TRACES_SAMPLER_ARG") or 1.0), 0.0), 1.0)
        except ValueError:
            return 1.0  # what the SDK does with a bad argument
    return None


class PresetIds(RandomIdGenerator):
    """Random ids, except for a trace id decided beforehand (see `Tracing.inbound`)."""

    def __init__(self) -> None:
        self.preset = 0

    def generate_trace_id(self) -> int:
        trace_id, self.preset = self.preset, 0
        return trace_id or super().generate_trace_id()


class TracedCall:
    """One CALL's span, ended with its outcome."""

    __slots__ = ("span",)

    def __init__(self, span: Span) -> None:
        self.span = span

    def activate(self) -> None:
        """Current in the running context, for good: the session gives each traced call a
        context of its own (a handler run eagerly and continued in a task could not detach
        it)."""
        context.attach(trace.set_span_in_context(self.span))

    def end(self, error: str | None = None) -> None:
        """`error`: the CALLERROR code, or what else ended the call (timeout, closed)."""
        if error is not None:
            self.span.set_attribute("error.type", error)
            self.span.set_attribute("rpc.response.status_code", error)
            self.span.set_status(Status(StatusCode.ERROR, error))
        self.span.end()


class Tracing:
    def __init__(self, provider: TracerProvider, ids: PresetIds | None = None,
                 ratio: float | None = None) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("csms")
        self._ids = ids
        # A station's CALL starts a trace: see `inbound` for why the ratio is kept here.
        self._bound = None if ids is None or ratio is None else \
            TraceIdRatioBased.get_bound_for_rate(ratio)

    def shutdown(self) -> None:
        """Export what is left; at the end of the process."""
        self.provider.shutdown()

    @staticmethod
    def _rpc(session: "Session", action: str, message_id: str) -> dict[str, Any]:
        known = action in session.known_actions
        attributes: dict[str, Any] = {
            "rpc.system.name": SYSTEM, "rpc.method": action if known else OTHER,
            "ocpp.station.id": session.station_id, "ocpp.version": session.version,
            "ocpp.message.id": message_id}
        if not known:
            attributes["rpc.method_original"] = action[:64]
        return attributes

    def inbound(self, session: "Session", action: str, message_id: str) -> TracedCall | None:
        """A SERVER span for a station's CALL or SEND (current while it is handled), or
        None when the sampler would not keep it: with a ratio sampler the decision the SDK
        makes on the trace id's low 64 bits is made here first, and a call not sampled
        costs one random number. (A CALL csms makes from within it then samples on its
        own, as a new trace.)"""
        if self._bound is not None:
            low = random.getrandbits(64)
            if low >= self._bound:
                return None
            assert self._ids is not None
            # The SDK's sampler decides the same on this id, whose low 64 bits these are.
            self._ids.preset = (random.getrandbits(64) << 64 | low) or 1
        attributes = self._rpc(session, action, message_id)
        name = action if attributes["rpc.method"] != OTHER else SYSTEM
        links = [Link(session.trace_link)] if session.trace_link is not None else None
        return TracedCall(self.tracer.start_span(name, kind=SpanKind.SERVER,
                                                 attributes=attributes, links=links))

    def outbound(self, session: "Session", action: str, message_id: str) -> TracedCall:
        """A CLIENT span for our CALL to a station: the station's round trip."""
        return TracedCall(self.tracer.start_span(
            action, kind=SpanKind.CLIENT, attributes=self._rpc(session, action, message_id)))

    def handshake(self, scope: Mapping[str, Any]) -> Span:
        """A station's websocket handshake; `admitted` or `refused` says how it ended."""
        return self.tracer.start_span("OCPP handshake", context=_parent(scope),
                                      kind=SpanKind.SERVER,
                                      attributes={"url.path": scope.get("path", "")})

    def route(self, station_id: str, action: str) -> Span:
        """A call sent through Redis to the pod that holds the station."""
        return self.tracer.start_span(f"route {action}", kind=SpanKind.CLIENT, attributes={
            "rpc.system.name": SYSTEM, "rpc.method": action, "ocpp.station.id": station_id,
            "messaging.system": "redis"})

    def routed(self, carrier: Mapping[str, str], station_id: str, action: str,
               caller: str) -> Span:
        """That call, taken from the inbox on the holding pod: the caller's trace goes on."""
        return self.tracer.start_span(
            f"routed {action}", context=propagate.extract(carrier), kind=SpanKind.SERVER,
            attributes={"rpc.system.name": SYSTEM, "rpc.method": action,
                         "ocpp.station.id": station_id, "csms.caller": caller})

    @staticmethod
    def inject(span: Span) -> dict[str, str]:
        """The span's trace context (W3C traceparent), to carry inside a message."""
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        return carrier

    async def serve_http(self, app: Any, scope: dict[str, Any], receive: Any,
                         send: Any) -> None:
        """A REST API request as a SERVER span (HTTP conventions), continuing the caller's
        trace when it sends a traceparent."""
        method = scope.get("method", "GET")
        span = self.tracer.start_span(method, context=_parent(scope), kind=SpanKind.SERVER,
                                      attributes={"http.request.method": method,
                                                  "url.path": scope.get("path", ""),
                                                  "url.scheme": scope.get("scheme", "http")})
        status = 500

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        token = context.attach(trace.set_span_in_context(span))
        try:
            await app(scope, receive, sending)
        except Exception as exc:
            span.record_exception(exc)
            raise
        finally:
            context.detach(token)
            route = getattr(scope.get("route"), "path", None)
            if route:
                span.set_attribute("http.route", route)
                span.update_name(f"{method} {route}")
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_attribute("error.type", str(status))
                span.set_status(Status(StatusCode.ERROR))
            span.end()


def _parent(scope: Mapping[str, Any]) -> context.Context:
    """The trace context a request's headers carry (traceparent), if any."""
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
    return propagate.extract(headers)


def outcome_of(span: Span, status: int) -> None:
    """A routed call's outcome, as the REST API answers it (200, 404, 503, 504...)."""
    span.set_attribute("csms.call.status", status)
    if status >= 500:
        span.set_attribute("error.type", str(status))
        span.set_status(Status(StatusCode.ERROR))


def admitted(span: Span, station_id: str, version: str) -> None:
    span.set_attributes({"ocpp.station.id": station_id, "ocpp.version": version,
                         "csms.handshake.outcome": "admitted"})


def refused(span: Span, station_id: str | None, reason: str, status: int) -> None:
    """A refusal is the station's error, not the server's: the span's status stays unset
    unless csms answered 5xx (draining, rate limited)."""
    span.set_attributes({"csms.handshake.outcome": "refused", "csms.handshake.reason": reason,
                         "http.response.status_code": status})
    if station_id is not None:
        span.set_attribute("ocpp.station.id", station_id)
    if status >= 500:
        span.set_attribute("error.type", reason)
        span.set_status(Status(StatusCode.ERROR, reason))


def log_ids() -> tuple[str, str] | None:
    """The current trace and span ids, for log lines."""
    ids = trace.get_current_span().get_span_context()
    if not ids.is_valid:
        return None
    return format(ids.trace_id, "032x"), format(ids.span_id, "016x")
