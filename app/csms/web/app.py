"""The root ASGI application: routes websocket, OCPP-over-HTTP, metrics and API traffic,
owns the lifespan (registry load and SIGHUP reload, closing stations on shutdown)."""

import asyncio
import gc
import logging
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import make_asgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from csms.config import Settings
from csms.handlers import central_system
from csms.handlers.provisioning import push_configuration
from csms.observability import tracing
from csms.observability.counters import Counters
from csms.observability.metrics import Metrics
from csms.observability.redaction import install
from csms.observability.runtime import Runtime
from csms.protocol import schemas
from csms.protocol.router import Router, tables
from csms.protocol.versions import VERSIONS
from csms.serverless.contract import PREFIX as GATEWAY_PREFIX
from csms.serverless.contract import Link
from csms.serverless.session import GatewaySession
from csms.services import Services
from csms.state.admission import TokenBucket
from csms.state.commands import CommandDispatcher
from csms.state.connections import EVICTED, SHUTDOWN
from csms.state.credentials import VerifiedCache
from csms.state.errors import Unavailable
from csms.state.registry import MemoryRegistry, RegistryError, StationEntry, load_stations
from csms.web import gateway_backend, http_frames, websocket
from csms.web.api import build_api
from csms.web.drain import drain, watch_sigterm
from csms.web.gc_pacing import GcPacer
from csms.web.handshake import Rejection
from csms.web.tls import ClientCertificates
from csms.web.tokens import ApiTokens

if TYPE_CHECKING:
    from csms.cluster.gateway import GatewayRouter

logger = logging.getLogger("csms.app")
OCPP_PREFIX = "/ocpp/"
SHUTDOWN_RESERVE = 5.0  # seconds of the graceful timeout kept for uvicorn after the drain
QUEUE_DEPTH_EVERY = 5.0  # seconds between two reads of the command queue's depth


class AppHooks:
    """Session hooks: metrics per message, and accepted messages onto the event bus."""

    def __init__(self, metrics: Metrics | None, services: Services) -> None:
        self._metrics = metrics
        self.accepted = services.events.publish  # same signature: no extra call per message

    def inbound(self, version: str, action: str, outcome: str, seconds: float) -> None:
        if self._metrics is not None:
            self._metrics.inbound(version, action, outcome, seconds)

    def outbound(self, version: str, action: str, outcome: str, seconds: float) -> None:
        if self._metrics is not None:
            self._metrics.outbound(version, action, outcome, seconds)

    def unexpected(self, version: str, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.unexpected(version, kind)


class _DroppedEvents:
    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily("csms_events_dropped",
                                     "Events dropped because a subscriber fell behind")
        family.add_metric([], self._services.events.dropped)
        yield family


class _Health:
    """Gauges read at scrape time, for the alerts (charts/csms/templates/prometheusrule.yaml):
    ready, draining, Redis reachable, and writes held back while it is not."""

    def __init__(self, app: "CsmsApp") -> None:
        self._app = app

    def collect(self) -> Iterator[Metric]:
        app = self._app
        yield GaugeMetricFamily("csms_ready", "1 while the process takes stations (/readyz)",
                                value=float(app.ready and not app.draining))
        yield GaugeMetricFamily("csms_draining", "1 while the process drains its stations",
                                value=float(app.draining))
        reachable = getattr(app.services.router, "reachable", None)
        if reachable is not None:  # cluster mode
            yield GaugeMetricFamily("csms_redis_reachable",
                                    "1 while Redis answers the ownership heartbeat",
                                    value=float(reachable))
        waiting = GaugeMetricFamily("csms_writes_waiting",
                                    "Writes buffered for Redis and not written yet",
                                    labels=["kind"])
        waiting.add_metric(["events"], getattr(app.services.events, "pending", 0))
        waiting.add_metric(["state"], getattr(app.services.stations, "pending", 0))
        yield waiting
        if app.queue_depth is not None:
            yield GaugeMetricFamily("csms_commands_queued",
                                    "Queued commands not delivered or expired yet (cluster-wide "
                                    "with Redis); read every few seconds",
                                    value=app.queue_depth)


class CsmsApp:
    def __init__(self, routers: Sequence[Router], settings: Settings, services: Services,
                 builtin: bool) -> None:
        self.settings = settings
        self.services = services
        self._internal_port = settings.internal_port
        self.tables = tables([*routers, *(central_system(services) if builtin else [])])
        self.metrics = Metrics() if settings.metrics else None
        self.runtime: Runtime | None = None
        if self.metrics is not None:
            self.metrics.registry.register(_DroppedEvents(services))
            self.metrics.registry.register(_Health(self))
            self.metrics.registry.register(Counters())
            self.runtime = Runtime(self.metrics.registry)
            self._metrics_app = make_asgi_app(self.metrics.registry)
        self.hooks = AppHooks(self.metrics, services)
        self.tracing: tracing.Tracing | None = None  # configured at start-up, per process
        install(*settings.secrets())  # in every worker, and when csms is embedded
        self.tokens = ApiTokens(settings.api_tokens, settings.api_token_file)
        self.credentials = VerifiedCache()
        header = settings.client_cert_header
        self.gateway = self._gateway_router(services) if settings.mode == "gateway" else None
        if self.gateway is not None:
            self.gateway.sessions = self.gateway_session
        # In gateway mode the gateway verifies certificates, and names the subject it
        # verified in the connect request.
        self.certificates = ClientCertificates(
            direct=self.gateway is not None or bool(
                settings.ssl_certfile and settings.ssl_ca_certs and settings.ws == "csms"),
            header=header.lower().encode() if header else None)
        self.admissions = TokenBucket(settings.connect_rate, 2 * settings.connect_rate)
        self.dispatcher = CommandDispatcher(services.commands)
        services.router.wake = self.dispatcher.wake
        services.router.control = self._control
        self.api = build_api(self)
        self.ready = False
        self.draining = False
        self.queue_depth: int | None = None  # refreshed in the background (Redis is async)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.gc = GcPacer(settings.gc_young_every, settings.gc_full_every,
                          observer=self.runtime)
        self._gc_task: asyncio.Task[None] | None = None
        self._depth_task: asyncio.Task[None] | None = None
        self._drain: asyncio.Task[None] | None = None
        # Loaded now, so a bad file stops the server before it listens; the in-memory
        # registry takes it at once, a Redis one at start-up.
        self._entries = load_stations(settings.stations) if settings.stations else None
        if self._entries is not None and isinstance(services.registry, MemoryRegistry):
            services.registry.set(self._entries)
            self._entries = None

    @staticmethod
    def _gateway_router(services: Services) -> "GatewayRouter":
        from csms.cluster.gateway import GatewayRouter

        if not isinstance(services.router, GatewayRouter):
            raise ValueError("gateway mode needs the gateway router (CSMS_REDIS_URL)")
        return services.router

    def gateway_session(self, station_id: str, version: str, link: Link, send: Any,
                        station: Any = None) -> GatewaySession:
        """A session for one gateway request: the station's socket is on the gateway."""
        assert self.gateway is not None
        return GatewaySession(link, self.gateway, station_id, version, self.tables[version],
                              send, station=station, hooks=self.hooks,
                              call_timeout=self.settings.call_timeout,
                              max_depth=self.settings.max_depth, tracer=self.tracing)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        path: str = scope.get("path", "")
        gateway = self.gateway is not None and path.startswith(GATEWAY_PREFIX)
        stations = path.startswith(OCPP_PREFIX) or gateway
        if kind == "lifespan":
            await self._lifespan(receive, send)
        elif self._internal_port is not None and stations == self._internal(scope):
            # Split ports: stations only on the main one, everything else only internally.
            await self._not_here(scope, send)
        elif kind == "websocket":
            if self.gateway is not None:
                await websocket.deny(scope, send, Rejection(
                    404, "bad_path", "gateway mode: stations connect to the gateway"))
            elif stations:
                await websocket.serve(self, scope, receive, send)
            else:
                await websocket.deny(scope, send, Rejection(
                    404, "bad_path", f"stations connect to {OCPP_PREFIX}{{station_id}}"))
        elif kind == "http":
            if gateway:
                await gateway_backend.serve(self, scope, receive, send)
            elif stations:
                await http_frames.serve(self, scope, receive, send)
            elif path == "/metrics" and self.metrics is not None:
                await self._metrics_app(scope, receive, send)
            elif self.tracing is not None:
                await self.tracing.serve_http(self.api, scope, receive, send)
            else:
                await self.api(scope, receive, send)

    def _internal(self, scope: dict[str, Any]) -> bool:
        server = scope.get("server")
        return server is not None and server[1] == self._internal_port

    @staticmethod
    async def _not_here(scope: dict[str, Any], send: Any) -> None:
        rejection = Rejection(404, "bad_path", "not found on this port")
        if scope["type"] == "websocket":
            await websocket.deny(scope, send, rejection)
        else:
            await http_frames.respond(send, 404, b"not found on this port\n")

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # Here, not at import: each worker process has its own exporter thread.
                self.tracing = tracing.configure()
                self.services.router.tracing = self.tracing
                self.services.router.runtime = self.runtime
                for version in VERSIONS:
                    schemas.warm(version)
                for resource in self.services.resources:
                    await resource.start()
                if self._entries is not None:
                    await self.services.registry.replace(self._entries)
                    self._entries = None
                await self._announce_certificates()
                self._watch_sighup()
                self._watch_sigterm()
                # Everything built so far lives as long as the process: keep it out of the
                # cyclic collector's scans, which otherwise walk the whole heap on the hot path.
                gc.collect()
                gc.freeze()
                self._gc_task = asyncio.get_running_loop().create_task(self.gc.run())
                if self.metrics is not None:
                    self._depth_task = asyncio.get_running_loop().create_task(
                        self._watch_queue())
                self.ready = True
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.ready = False
                self.draining = True
                if self._drain is not None:
                    await self._drain
                await self.services.connections.close_all(SHUTDOWN)
                await self.dispatcher.close()
                if self._gc_task is not None:
                    self._gc_task.cancel()
                if self._depth_task is not None:
                    self._depth_task.cancel()
                for resource in reversed(self.services.resources):
                    await resource.close()
                if self.tracing is not None:
                    await asyncio.to_thread(self.tracing.shutdown)  # the last spans out
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def settle(self) -> None:
        """Finish the work requests left running and write what is buffered: under AWS
        Lambda nothing runs between two invocations (`csms.serverless.aws_lambda`)."""
        await self.services.router.idle()
        for part in (self.services.stations, self.services.events):
            flush = getattr(part, "flush", None)
            if flush is not None:
                try:
                    await flush()
                except Exception as exc:  # kept, and written by a later invocation
                    logger.warning("buffered writes not written now: %s", exc)

    async def _watch_queue(self) -> None:
        """The command queue's depth for /metrics, every few seconds."""
        while True:
            try:
                self.queue_depth = await self.services.commands.depth()
            except Exception as exc:  # Redis unreachable: the gauge goes until it is back
                logger.debug("queue depth unknown: %s", exc)
                self.queue_depth = None
            await asyncio.sleep(QUEUE_DEPTH_EVERY)

    async def _announce_certificates(self) -> None:
        """Say at start-up when profile-3 stations will be refused, and why."""
        if self.certificates.verifiable:
            return
        why = ("no client certificate can be verified: set CSMS_SSL_CA_CERTS (with "
               "CSMS_SSL_CERTFILE and CSMS_WS=csms), or CSMS_CLIENT_CERT_HEADER behind a "
               "TLS-terminating proxy")
        registry = self.services.registry
        if isinstance(registry, MemoryRegistry):
            count = sum(1 for e in await registry.all() if e.security_profile == 3)
            if count:
                logger.warning("%d security profile 3 stations will be refused: %s", count, why)
                return
        logger.info("security profile 3 stations will be refused: %s", why)

    def _watch_sighup(self) -> None:
        if not self.settings.stations:
            return
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reload)
        except (NotImplementedError, RuntimeError, ValueError):
            logger.warning("SIGHUP reload is unavailable in this process")

    async def _control(self, message: dict[str, Any]) -> None:
        """The operator's messages for a station held here (or, in gateway mode, for any
        station on the gateway)."""
        sid = message["station"]
        if self.gateway is not None:
            await self._control_gateway(sid, message)
            return
        session = self.services.connections.get(sid)
        if session is None:
            return
        if message["kind"] == "evict":
            await self.services.connections.disconnect(sid, EVICTED)
        elif message["kind"] == "configure":
            entry = await self.services.registry.get(sid)
            if entry is None:
                return
            session.context.station = entry
            desired = {k: v for k, v in entry.configuration.items()
                       if k in message.get("keys", entry.configuration)}
            if desired:
                task = asyncio.get_running_loop().create_task(
                    push_configuration(self.services, session.context, desired))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _control_gateway(self, sid: str, message: dict[str, Any]) -> None:
        assert self.gateway is not None
        if message["kind"] == "evict":
            await self.gateway.close_station(sid, EVICTED)
            return
        entry = await self.services.registry.get(sid)
        found = await self.gateway.link(sid)
        if entry is None or found is None:
            return
        link, version = found
        session = self.gateway_session(sid, version, link, self.gateway.sender(link), entry)
        desired = {k: v for k, v in entry.configuration.items()
                   if k in message.get("keys", entry.configuration)}
        if desired:
            await push_configuration(self.services, session.context, desired)

    def _watch_sigterm(self) -> None:
        """SIGTERM drains first, then hands over to uvicorn's own shutdown."""

        def start() -> "asyncio.Task[None]":
            self._drain = asyncio.get_running_loop().create_task(
                drain(self, self.drain_bound))
            return self._drain

        watch_sigterm(start)

    @property
    def drain_bound(self) -> float:
        """The drain's share of the graceful timeout; uvicorn's shutdown gets the rest."""
        return max(1.0, self.settings.graceful_timeout - SHUTDOWN_RESERVE)

    def reload(self) -> bool:
        """Re-read the stations file; on error keep the registry in force and say why."""
        assert self.settings.stations
        try:
            entries = load_stations(self.settings.stations)
        except RegistryError as exc:
            logger.error("registry reload failed, previous registry kept: %s", exc)
            return False
        task = asyncio.get_running_loop().create_task(self._apply(entries))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _apply(self, entries: list[StationEntry]) -> None:
        await self.services.registry.replace(entries)
        by_id = {e.station_id: e for e in entries}
        if self.gateway is not None:
            await self._evict_gateway(by_id)
        for session in self.services.connections.sessions():
            entry = by_id.get(session.station_id)
            if (entry is None and self.services.default_entry is None) or (
                    entry is not None and not entry.enabled):
                await self.services.connections.disconnect(session.station_id, EVICTED)
            elif entry is not None:
                session.context.station = entry
        logger.info("registry reloaded: %d stations", len(entries))

    async def _evict_gateway(self, by_id: dict[str, StationEntry]) -> None:
        """Close the gateway connections of stations the reloaded registry no longer lets in."""
        assert self.gateway is not None
        try:
            for sid in await self.gateway.stations():
                entry = by_id.get(sid)
                if (entry is None and self.services.default_entry is None) or (
                        entry is not None and not entry.enabled):
                    await self.gateway.close_station(sid, EVICTED)
        except Unavailable as exc:
            logger.warning("stations removed by the reload stay connected until their next "
                           "frame: %s", exc)


def create_app(routers: Sequence[Router] = (), *, settings: Settings | None = None,
               services: Services | None = None, builtin: bool = True) -> CsmsApp:
    """An ASGI app serving `routers` (first wins) ahead of the central system's own
    handlers; `builtin=False` serves only `routers`."""
    settings = settings or Settings.from_env()
    if not logging.getLogger("csms").handlers and not logging.getLogger().handlers:
        # Served by plain uvicorn (or another ASGI server), nothing set up logging: without
        # this, handlers' context.log lines below WARNING would go nowhere.
        from csms.observability.logging import configure

        configure(settings.log_level, settings.log_json, settings.secrets())
    if services is None and settings.redis_url:
        from csms.cluster import redis_services

        services = redis_services(settings.redis_url, settings.redis_prefix,
                                  lease=settings.lease, call_timeout=settings.call_timeout,
                                  owner_prefix=settings.pod_name,
                                  retention_days=settings.ledger_retention_days,
                                  gateway=settings.mode == "gateway",
                                  gateway_token=settings.gateway_token)
    if services is None and settings.data_dir:
        from csms.ledger.sqlite import SqliteLedger
        from csms.state.commands_sqlite import SqliteCommandStore
        from csms.state.stations_sqlite import SqliteStationStore
        from csms.storage.sqlite import Database

        database = Database(Path(settings.data_dir) / "csms.sqlite3")
        ledger, commands = SqliteLedger(database), SqliteCommandStore(database)
        stations = SqliteStationStore(database)
        # Started in this order, closed in the reverse one: the database last.
        services = Services(ledger=ledger, transactions=ledger, commands=commands,
                            stations=stations, resources=[database, ledger, commands, stations])
    services = services or Services()
    services.boots = TokenBucket(settings.boot_rate, 2 * settings.boot_rate)
    services.pending_interval = settings.pending_interval
    if settings.accept_unknown and services.default_entry is None:
        services.default_entry = StationEntry(station_id="*", name="*", accept_all=True)
    return CsmsApp(routers, settings, services, builtin)


def app_from_env() -> CsmsApp:
    """The factory `csms serve` hands to uvicorn: each worker builds its app from CSMS_*."""
    return create_app()
