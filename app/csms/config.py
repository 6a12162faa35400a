"""One frozen settings object, read once from `CSMS_*` environment variables and from the
`csms serve` flags of the same names (`CSMS_MAX_FRAME_SIZE` is `--max-frame-size`).

Every value is checked when the object is made, so a bad one stops the server before it
listens: `SettingsError` names the key, what was expected and what came (never the value
of a secret)."""

import dataclasses
import ipaddress
import os
import re
import ssl
from collections.abc import Callable, Mapping
from typing import Any, get_type_hints
from urllib.parse import SplitResult, urlsplit

from csms.observability.redaction import REDACTOR, url_passwords

Check = Callable[[Any], str | None]  # the expectation a value fails, or None


class SettingsError(ValueError):
    pass


def _field(default: Any, help: str, check: Check | None = None, secret: bool = False) -> Any:
    return dataclasses.field(default=default,
                             metadata={"help": help, "check": check, "secret": secret})


# -- checks: each returns what was expected when the value does not fit ------------------

def between(low: float, high: float) -> Check:
    return lambda v: None if low <= v <= high else f"a number from {low:g} to {high:g}"


def above(low: float) -> Check:
    return lambda v: None if v > low else f"a number above {low:g}"


def at_least(low: float) -> Check:
    return lambda v: None if v >= low else f"a number of at least {low:g}"


def one_of(*choices: str) -> Check:
    return lambda v: None if v in choices else "one of " + ", ".join(choices)


def readable_file(value: str) -> str | None:
    return None if os.path.isfile(value) and os.access(value, os.R_OK) else "a readable file"


def existing_path(value: str) -> str | None:
    return None if os.path.exists(value) else "an existing file or folder"


def writable_folder(value: str) -> str | None:
    """A folder csms may write in, or one it may create (its nearest existing parent)."""
    path = os.path.abspath(value)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    ok = os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)
    return None if ok else "a folder csms can write in or create"


def _ws(value: str) -> str | None:
    # wsproto is not installed with csms: name its uvicorn class (module:Class) to use it.
    if value in ("csms", "auto", "websockets", "websockets-sansio") or ":" in value:
        return None
    return "csms, auto, websockets, websockets-sansio or module:Class"


def networks(value: str) -> str | None:
    for item in (i.strip() for i in value.split(",")):
        if item == "*":
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            return "comma-separated IP addresses or networks, or *"
    return None


_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP header name (RFC 9110 token)


def header_name(value: str) -> str | None:
    return None if _TOKEN.match(value) else "an HTTP header name"


def api_tokens_check(value: str) -> str | None:
    tokens = [t.strip() for t in value.split(",")]
    if not all(tokens):
        return "comma-separated tokens, none empty"
    if any(len(t) < 16 for t in tokens):
        return "tokens of at least 16 characters"
    return None


def _url(value: str) -> SplitResult | None:
    """The URL's parts, None when it does not parse (a bad port included)."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        return None
    return parts


def redis_url_check(value: str) -> str | None:
    parts = _url(value)
    if parts is None or parts.scheme not in ("redis", "rediss", "unix") or not (
            parts.hostname or parts.path):
        return "a redis://, rediss:// or unix:// URL"
    return None


def http_url(value: str) -> str | None:
    parts = _url(value)
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or \
            parts.query:
        return "an http:// or https:// URL"
    return None


def token_check(value: str) -> str | None:
    return None if len(value) >= 16 and value.strip() == value else \
        "a token of at least 16 characters"


class _FromEnv:
    """What every settings object shares: each value checked when the object is made, and
    read from `CSMS_*` variables (and flags) by `from_env`."""

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None:
                continue
            kind = _base(hints[f.name])
            if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
                raise SettingsError(f"{env_key(f.name)}: expected {kind.__name__}, "
                                    f"got {type(value).__name__}")
            check = f.metadata["check"]
            expected = check(value) if check is not None else None
            if expected is not None:
                raise _mismatch(env_key(f.name), expected, value, f.metadata["secret"])

    def __repr__(self) -> str:  # never show a secret
        shown = {f.name: _shown(f, getattr(self, f.name))
                 for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        return f"{type(self).__name__}({shown})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Any:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        hints = get_type_hints(cls)
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            key = env_key(f.name)
            if key in env and overrides.get(f.name) is None:
                values[f.name] = value = parse(key, env[key], hints[f.name], f.metadata["secret"])
                check = f.metadata["check"]
                expected = check(value) if check is not None and value is not None else None
                if expected is not None:  # named with what came, as it was written
                    raise _mismatch(key, expected, env[key], f.metadata["secret"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclasses.dataclass(frozen=True, repr=False)
class Settings(_FromEnv):
    host: str = _field("0.0.0.0", "interface to listen on",
                       lambda v: None if v.strip() else "a host name or address")
    port: int = _field(9000, "port to listen on", between(1, 65535))
    internal_port: int | None = _field(
        None, "a second port for the REST API, /metrics, the probes and /docs; the main port "
              "then serves only stations (/ocpp/). Unset: one port serves everything",
        between(1, 65535))
    stations: str | None = _field(None, "ChargingStation manifests: a YAML file or a folder",
                                  existing_path)
    accept_unknown: bool = _field(
        False, "let stations missing from the registry connect (development only)")
    data_dir: str | None = _field(
        None, "where the embedded central system keeps its transaction ledger, command queue "
              "and station state (SQLite), durable across restarts; unset (and without "
              "Redis): in memory only",
        writable_folder)
    workers: int = _field(1, "uvicorn worker processes", between(1, 256))
    log_level: str = _field("info", "debug, info, warning or error",
                            one_of("debug", "info", "warning", "error", "critical"))
    log_json: bool = _field(False, "log one JSON object per line")
    max_frame_size: int = _field(262_144, "largest accepted frame in bytes (close 1009 above)",
                                 between(1024, 64 * 1024 * 1024))
    max_depth: int = _field(32, "deepest nesting of arrays and objects a frame may have "
                                "(16-128); deeper CALLs get FormatViolation", between(16, 128))
    ping_interval: float = _field(30.0, "seconds between websocket pings (0 disables)",
                                  at_least(0))
    ping_timeout: float = _field(30.0, "seconds to wait for a pong before dropping", above(0))
    call_timeout: float = _field(30.0, "default seconds to wait for a station's reply",
                                 above(0))
    api_token: str | None = _field(
        None, "bearer tokens required by /api/v1: one, or several separated by commas while "
              "rotating; at least 16 characters each", api_tokens_check, secret=True)
    api_token_file: str | None = _field(
        None, "a file of API bearer tokens, one per line (e.g. a mounted Secret), re-read "
              "when it changes; with CSMS_API_TOKEN both sets are accepted", readable_file)
    ws: str = _field("csms", "websocket implementation: csms (uvicorn's sans-I/O one, leaner "
                             "per connection) or uvicorn's own (auto, websockets, "
                             "websockets-sansio, or module:Class)",
                     _ws)
    graceful_timeout: float = _field(30.0, "seconds a shutdown (the SIGTERM drain) may take",
                                     above(0))
    drain_spread: float = _field(
        10.0, "seconds over which SIGTERM closes station sockets, in jittered batches",
        at_least(0))
    connect_rate: float = _field(
        1000.0, "new station connections a second this process admits (0: no limit)",
        at_least(0))
    boot_rate: float = _field(
        500.0, "BootNotifications a second accepted; beyond it Pending (0: no limit)",
        at_least(0))
    pending_interval: float = _field(60.0, "seconds (jittered) a Pending boot waits", above(0))
    proxy_headers: bool = _field(False, "trust X-Forwarded-* (TLS terminated upstream)")
    forwarded_allow_ips: str = _field("127.0.0.1", "proxies whose X-Forwarded-* is trusted",
                                      networks)
    client_cert_header: str | None = _field(
        None, "header in which a TLS-terminating proxy passes the verified client "
              "certificate's subject DN (or commonName), for security profile 3", header_name)
    ssl_certfile: str | None = _field(None, "TLS certificate (serve wss directly)",
                                      readable_file)
    ssl_keyfile: str | None = _field(None, "TLS private key", readable_file)
    ssl_ca_certs: str | None = _field(
        None, "CA bundle that client certificates are verified against (profile 3)",
        readable_file)
    metrics: bool = _field(True, "serve Prometheus metrics at /metrics")
    redis_url: str | None = _field(
        None, "cluster mode: registry, station state, transaction ids and events in Redis "
              "(redis://, rediss:// for TLS; user and password in the URL)", redis_url_check,
        secret=True)
    redis_prefix: str = _field("csms:", "prefix of every Redis key",
                               lambda v: None if v.strip() == v else "no surrounding spaces")
    lease: float = _field(30.0, "cluster mode: seconds a station's ownership lasts unrenewed",
                          at_least(1))
    ledger_retention_days: float = _field(
        400.0, "cluster mode: days an ended transaction stays in the Redis ledger", above(0))
    pod_name: str | None = _field(
        None, "cluster mode: the prefix of this process's owner id, shown as a station's pod "
              "(the chart sets the pod's name; unset: the host name)",
        lambda v: None if v and not any(c.isspace() for c in v) else "a name without spaces")
    mode: str = _field(
        "websocket", "websocket: stations connect to csms itself; gateway: a websocket gateway "
                     "(csms gateway, or AWS API Gateway) holds their sockets and forwards "
                     "connects and frames as HTTP requests (needs CSMS_REDIS_URL)",
        one_of("websocket", "gateway"))
    gateway_token: str | None = _field(
        None, "gateway mode: the shared secret between csms gateway and its backends, sent "
              "in X-Gateway-Token both ways (unset: not checked)", token_check, secret=True)
    gateway_endpoint: str | None = _field(
        None, "gateway mode: the @connections endpoint to post to, when it is not the one "
              "the gateway names (an API Gateway custom domain)", http_url)
    gc_young_every: float = _field(0.1, "seconds between young garbage collections", above(0))
    gc_full_every: float = _field(600.0, "seconds between full garbage collections", above(0))

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_ports()
        _check_tls(self)

    def _check_ports(self) -> None:
        if self.internal_port == self.port:
            raise SettingsError(f"CSMS_INTERNAL_PORT: expected a port other than CSMS_PORT "
                                f"(got {self.internal_port})")
        if self.mode == "gateway" and not self.redis_url:
            raise SettingsError("CSMS_MODE: expected gateway only with CSMS_REDIS_URL (the "
                                "stations' connections are kept in Redis)")

    @property
    def api_tokens(self) -> tuple[str, ...]:
        """CSMS_API_TOKEN's tokens (comma-separated while one rotates)."""
        return tuple(t.strip() for t in (self.api_token or "").split(",") if t.strip())

    def secrets(self) -> tuple[str, ...]:
        """Values that must never be logged: the API tokens, the gateway's token and the
        Redis password."""
        gateway = (self.gateway_token,) if self.gateway_token else ()
        return self.api_tokens + gateway + url_passwords(self.redis_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 **overrides: Any) -> "Settings":
        return super().from_env(environ, **overrides)  # type: ignore[no-any-return]


def _check_tls(settings: Any) -> None:
    """The TLS files fit together and load (csms serve and csms gateway alike)."""
    if settings.ssl_keyfile and not settings.ssl_certfile:
        raise SettingsError("CSMS_SSL_KEYFILE: expected together with CSMS_SSL_CERTFILE")
    if settings.ssl_ca_certs and not settings.ssl_certfile:
        raise SettingsError("CSMS_SSL_CA_CERTS: expected together with CSMS_SSL_CERTFILE "
                            "(client certificates are checked by csms's own TLS)")
    if not settings.ssl_certfile:
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile)
    except (ssl.SSLError, ValueError) as exc:
        raise SettingsError(f"CSMS_SSL_CERTFILE: expected a PEM certificate whose key is "
                            f"in it or in CSMS_SSL_KEYFILE ({_reason(exc)})") from None
    if settings.ssl_ca_certs:
        try:
            context.load_verify_locations(settings.ssl_ca_certs)
        except ssl.SSLError as exc:
            raise SettingsError(f"CSMS_SSL_CA_CERTS: expected PEM CA certificates "
                                f"({_reason(exc)})") from None


def _base(kind: Any) -> Any:
    return next((t for t in getattr(kind, "__args__", (kind,)) if t is not type(None)), str)


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "reason", None) or exc)


def _shown(f: "dataclasses.Field[Any]", value: Any) -> Any:
    if not f.metadata["secret"] or value is None:
        return value
    if f.name == "redis_url":
        return REDACTOR.redact(value)
    return "***"


def _mismatch(key: str, expected: str, value: Any, secret: bool) -> SettingsError:
    """`KEY: expected what (got value)`; a secret's value is never repeated."""
    got = "" if secret else f" (got {value!r})"
    return SettingsError(f"{key}: expected {expected}{got}")


def env_key(name: str) -> str:
    return "CSMS_" + name.upper()


def parse(key: str, raw: str, kind: Any, secret: bool = False) -> Any:
    base = _base(kind)
    if raw == "" and kind != base:
        return None
    if base is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise _mismatch(key, "true or false", raw, secret)
    try:
        return base(raw)
    except ValueError:
        raise _mismatch(key, "an integer" if base is int else "a number", raw, secret) from None


def read_setting(env: Mapping[str, str], key: str, kind: Any, default: Any,
                 check: Check | None = None, secret: bool = False) -> Any:
    """One `CSMS_*` value outside `Settings` (the operator's), parsed and checked alike."""
    value = parse(key, env[key], kind, secret) if key in env else default
    expected = check(value) if check is not None and value is not None else None
    if expected is not None:
        raise _mismatch(key, expected, env.get(key, value), secret)
    return value


def _like(name: str, default: Any = dataclasses.MISSING) -> Any:
    """A field that means what the `Settings` field of that name means (its default, help,
    check), for another command's settings."""
    f = {f.name: f for f in dataclasses.fields(Settings)}[name]
    return dataclasses.field(default=f.default if default is dataclasses.MISSING else default,
                             metadata=f.metadata)


@dataclasses.dataclass(frozen=True, repr=False)
class GatewaySettings(_FromEnv):
    """`csms gateway`: the websocket terminator in front of gateway-mode backends."""

    backend: str | None = _field(
        None, "the backend's URL (csms serve --mode gateway, or a load balancer in front of "
              "several): connects, frames and disconnects are posted to its /gateway/",
        http_url)
    host: str = _like("host")
    port: int = _like("port", 9100)
    internal_port: int | None = _field(
        None, "a second port for the @connections API, /metrics and the probes; the main "
              "port then serves only stations (/ocpp/). Unset: one port serves everything",
        between(1, 65535))
    advertise_url: str | None = _field(
        None, "the URL backends post to this gateway's @connections API at (unset: "
              "http(s)://HOST:INTERNAL_PORT, or HOST:PORT without one, with this machine's "
              "name for 0.0.0.0; with TLS, backends must trust its certificate)", http_url)
    gateway_token: str | None = _like("gateway_token")
    backend_timeout: float = _field(
        330.0, "seconds a backend may take over one request (a frame whose handler calls the "
               "station waits for its answer)", above(0))
    max_frame_size: int = _like("max_frame_size")
    ping_interval: float = _like("ping_interval")
    ping_timeout: float = _like("ping_timeout")
    connect_rate: float = _like("connect_rate")
    graceful_timeout: float = _like("graceful_timeout")
    drain_spread: float = _like("drain_spread")
    ssl_certfile: str | None = _like("ssl_certfile")
    ssl_keyfile: str | None = _like("ssl_keyfile")
    ssl_ca_certs: str | None = _like("ssl_ca_certs")
    log_level: str = _like("log_level")
    log_json: bool = _like("log_json")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.backend:
            raise SettingsError("CSMS_BACKEND: expected the backend's URL (--backend URL)")
        if self.internal_port == self.port:
            raise SettingsError(f"CSMS_INTERNAL_PORT: expected a port other than CSMS_PORT "
                                f"(got {self.internal_port})")
        _check_tls(self)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 **overrides: Any) -> "GatewaySettings":
        return super().from_env(environ, **overrides)  # type: ignore[no-any-return]

    def secrets(self) -> tuple[str, ...]:
        return (self.gateway_token,) if self.gateway_token else ()


# CSMS_* variables that belong to other commands (the operator), not to `csms serve`.
OTHER_KEYS = frozenset({"CSMS_OPERATOR_STATUS_EVERY", "CSMS_OPERATOR_STATUS_RATE"})


def unknown_keys(environ: Mapping[str, str] | None = None) -> list[str]:
    """`CSMS_*` variables no setting reads: most likely a typo, worth a warning."""
    env = os.environ if environ is None else environ
    known = {env_key(f.name) for f in (*dataclasses.fields(Settings),
                                       *dataclasses.fields(GatewaySettings))} | OTHER_KEYS
    return sorted(k for k in env if k.startswith("CSMS_") and k not in known)
