"""The `csms` command: `csms serve` runs the central system, `csms gateway` a websocket
gateway in front of it (serverless mode), `csms simulate` a fleet."""

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from typing import Any, get_type_hints

from csms.config import GatewaySettings, Settings, SettingsError, env_key, unknown_keys


def _add_settings_flags(parser: argparse.ArgumentParser, kind: type = Settings) -> None:
    hints = get_type_hints(kind)
    for f in dataclasses.fields(kind):
        flag = "--" + f.name.replace("_", "-")
        shown = "" if f.default in (None, "") or f.metadata["secret"] else \
            f" (default: {f.default})"
        help_text = f"{f.metadata['help']}{shown} [{env_key(f.name)}]"
        if hints[f.name] is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=None, help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, default=None, help=help_text)


WS_PROTOCOLS = {"csms": "csms.web.wsprotocol:LeanWebSocketProtocol"}


def _settings(args: argparse.Namespace, kind: Any) -> Any:
    """The command's settings from its flags and CSMS_* variables, logging configured;
    None (said why) when a value is wrong."""
    from csms.observability.logging import configure

    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(kind)
             if getattr(args, f.name) is not None}
    # Flags become environment variables so every uvicorn worker reads the same settings.
    for name, value in flags.items():
        os.environ[env_key(name)] = str(value)
    try:
        settings = kind.from_env()
    except SettingsError as exc:
        print(f"csms: {exc}", file=sys.stderr)
        return None
    configure(settings.log_level, settings.log_json, settings.secrets())
    for key in unknown_keys():
        print(f"csms: warning: {key} is not a setting; ignored", file=sys.stderr)
    return settings


def serve(args: argparse.Namespace) -> int:
    from csms.state.registry import RegistryError, load_stations

    settings: Settings | None = _settings(args, Settings)
    if settings is None:
        return 2
    if settings.workers > 1 and not settings.redis_url:
        # Each worker holds its own stations: only Redis can route a call to the right one.
        print("csms: --workers above 1 needs --redis-url (cluster mode)", file=sys.stderr)
        return 2
    if settings.stations:
        try:
            count = len(load_stations(settings.stations))
        except RegistryError as exc:
            print(f"csms: {exc}", file=sys.stderr)
            return 2
    else:
        count = 0
    import uvicorn

    scheme = "wss" if settings.ssl_certfile else "ws"
    host = "127.0.0.1" if settings.host == "0.0.0.0" else settings.host
    if settings.mode == "gateway":
        print(f"csms: gateway mode: gateways post station events to "
              f"{scheme.replace('ws', 'http')}://{host}:{settings.port}/gateway/",
              file=sys.stderr, flush=True)
        if not settings.gateway_token:
            print("csms: warning: CSMS_GATEWAY_TOKEN is not set: anyone who reaches "
                  "/gateway/ can act as a station's gateway", file=sys.stderr, flush=True)
    where = "" if settings.mode == "gateway" else \
        f"csms: stations connect to {scheme}://{host}:{settings.port}/ocpp/{{station_id}}\n"
    print(f"csms: {count} registered stations"
          f"{' (unknown stations accepted)' if settings.accept_unknown else ''}\n{where}"
          f"csms: API docs at {scheme.replace('ws', 'http')}://{host}:"
          f"{settings.internal_port or settings.port}/docs",
          file=sys.stderr, flush=True)
    if count == 0 and not settings.accept_unknown and not settings.redis_url:
        # Without Redis, nothing else can register stations: every handshake gets 404.
        print("csms: warning: no stations are registered and unknown stations are refused: "
              "every station will get 404 (give --stations FILE, or --accept-unknown)",
              file=sys.stderr, flush=True)
    if not settings.data_dir and not settings.redis_url:
        print("csms: warning: transactions, queued commands and station state are kept in "
              "memory only and lost when the process ends (give --data-dir DIR, or "
              "--redis-url)",
              file=sys.stderr, flush=True)
    options = _uvicorn_options(settings)
    options.update(workers=settings.workers, proxy_headers=settings.proxy_headers,
                   forwarded_allow_ips=settings.forwarded_allow_ips,
                   timeout_graceful_shutdown=max(1, int(min(settings.graceful_timeout, 5))),
                   ws=WS_PROTOCOLS.get(settings.ws, settings.ws))
    return _run(uvicorn.Config("csms.web.app:app_from_env", **options), settings)


def _uvicorn_options(settings: Settings | GatewaySettings) -> dict[str, Any]:
    """What `csms serve` and `csms gateway` run uvicorn with alike: the same websocket
    limits, ping and TLS."""
    ping = settings.ping_interval or None
    options: dict[str, Any] = dict(
        host=settings.host, port=settings.port, factory=True, ws=WS_PROTOCOLS["csms"],
        ws_max_size=settings.max_frame_size, ws_ping_interval=ping,
        ws_ping_timeout=settings.ping_timeout if ping else None, ws_per_message_deflate=True,
        log_level=settings.log_level, access_log=False, lifespan="on",
        ssl_certfile=settings.ssl_certfile, ssl_keyfile=settings.ssl_keyfile,
        ssl_ca_certs=settings.ssl_ca_certs, loop="auto", http="auto",
    )
    if settings.ssl_certfile:
        # httptools with the ASGI TLS extension, for profile 3 over HTTP-posted frames.
        options["http"] = "csms.web.tls:TlsHttpToolsProtocol"
    if settings.ssl_ca_certs:
        import ssl

        # Asked for, not required: profile-2 stations (no certificate) share the port, and
        # each profile-3 station's certificate is required and checked at admission.
        options["ssl_cert_reqs"] = ssl.CERT_OPTIONAL
    return options


def gateway(args: argparse.Namespace) -> int:
    import uvicorn

    from csms.serverless.gateway import default_endpoint

    settings: GatewaySettings | None = _settings(args, GatewaySettings)
    if settings is None:
        return 2
    scheme = "wss" if settings.ssl_certfile else "ws"
    host = "127.0.0.1" if settings.host == "0.0.0.0" else settings.host
    print(f"csms: stations connect to {scheme}://{host}:{settings.port}/ocpp/{{station_id}}\n"
          f"csms: forwarding to {settings.backend}/gateway/; backends post to "
          f"{settings.advertise_url or default_endpoint(settings)}/@connections/{{id}}",
          file=sys.stderr, flush=True)
    if not settings.gateway_token:
        print("csms: warning: CSMS_GATEWAY_TOKEN is not set: anyone who reaches this port can "
              "send frames to stations through /@connections/", file=sys.stderr, flush=True)
    config = uvicorn.Config(
        "csms.serverless.gateway:gateway_from_env", **_uvicorn_options(settings),
        timeout_graceful_shutdown=max(1, int(min(settings.graceful_timeout, 5))))
    return _run(config, settings)


def _run(config: Any, settings: Settings | GatewaySettings) -> int:
    """uvicorn.run, on one socket or, with an internal port, on two (both in every worker)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    sockets = [config.bind_socket()]
    if settings.internal_port is not None:
        internal = uvicorn.Config(config.app, host=settings.host, port=settings.internal_port)
        sockets.append(internal.bind_socket())
    server = uvicorn.Server(config)
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=sockets).run()
            return 0
        server.run(sockets=sockets)
    except KeyboardInterrupt:
        # uvicorn raises Ctrl-C's signal again once it has shut down cleanly: no traceback.
        return 130
    return 0 if server.started else 3  # uvicorn's own exit code for a failed start-up


def simulate(args: argparse.Namespace) -> int:
    from csms.simulate.fleet import run

    return run(args)


def operator(args: argparse.Namespace) -> int:
    """`kopf run -m csms_operator`, one replica (standalone), with a liveness endpoint."""
    try:
        import kopf  # noqa: F401

        import csms_operator  # noqa: F401  (fails early without the operator extra)
    except ImportError as exc:
        print(f"csms: the operator needs its extra: pip install 'csms[operator]' ({exc})",
              file=sys.stderr)
        return 2
    from csms_operator.config import OperatorConfig
    from csms_operator.kube import credentials, unreachable

    try:
        OperatorConfig.from_env()  # a bad value stops here, with its key, not in a traceback
    except SettingsError as exc:
        print(f"csms: {exc}", file=sys.stderr)
        return 2
    # Said once and plainly here, rather than as kopf's tracebacks and retries.
    found = credentials()
    if found is None:
        print("csms: the operator has no Kubernetes API to log in to: no service account (it "
              "is not running in a pod) and no kubeconfig (KUBECONFIG, ~/.kube/config)",
              file=sys.stderr)
        return 2
    info, source = found
    why = None if source.startswith("the pod") else unreachable(info.server)
    if why is not None:  # in a pod, the API may come up late: kopf waits for it
        print(f"csms: the operator cannot reach the Kubernetes API at {info.server} (from "
              f"{source}): {why}", file=sys.stderr)
        return 2
    argv = [sys.executable, "-m", "kopf", "run", "-m", "csms_operator", "--standalone",
            "--liveness", args.liveness]
    argv += ["--namespace", args.namespace] if args.namespace else ["--all-namespaces"]
    if args.verbose:
        argv.append("--verbose")
    os.execv(sys.executable, argv)
    return 0  # not reached


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="csms", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the central system")
    _add_settings_flags(serve_parser)
    serve_parser.set_defaults(run=serve)
    gw = commands.add_parser(
        "gateway", help="run a websocket gateway in front of gateway-mode backends",
        description="Hold stations' websockets on /ocpp/{station_id}, post their connects, "
                    "frames and disconnects to a backend (csms serve --mode gateway) and serve "
                    "the @connections API backends reach stations through, as AWS API "
                    "Gateway WebSocket APIs do.")
    _add_settings_flags(gw, GatewaySettings)
    gw.set_defaults(run=gateway)
    from csms.simulate.options import add_options

    sim = commands.add_parser("simulate", help="run a simulated fleet of stations")
    add_options(sim)
    sim.set_defaults(run=simulate)
    op = commands.add_parser(
        "operator", help="run the Kubernetes operator (ChargingStation resources)",
        description="Reconcile ChargingStation resources into the Redis registry the pods "
                    "read (CSMS_REDIS_URL, CSMS_REDIS_PREFIX) and their live state into "
                    ".status (CSMS_OPERATOR_STATUS_EVERY, CSMS_OPERATOR_STATUS_RATE).")
    op.add_argument("--namespace", default=None, help="watch one namespace (default: all)")
    op.add_argument("--liveness", default="http://0.0.0.0:8080/healthz",
                    help="liveness probe endpoint")
    op.add_argument("--verbose", action="store_true")
    op.set_defaults(run=operator)
    return root


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    sys.exit(args.run(args))
