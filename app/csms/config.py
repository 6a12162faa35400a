"""One frozen settings object, read once from `CSMS_*` environment variables and from the
`csms serve` flags of the same names (`CSMS_MAX_FRAME_SIZE` is `--max-frame-size`).
A bad value raises `SettingsError` naming the key."""

import dataclasses
import os
from collections.abc import Mapping
from typing import Any, get_type_hints


class SettingsError(ValueError):
    pass


def _field(default: Any, help: str) -> Any:
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str = _field("0.0.0.0", "interface to listen on")
    port: int = _field(9000, "port to listen on")
    stations: str | None = _field(None, "ChargingStation manifests: a YAML file or a folder")
    accept_unknown: bool = _field(
        False, "let stations missing from the registry connect (development only)")
    workers: int = _field(1, "uvicorn worker processes")
    log_level: str = _field("info", "debug, info, warning or error")
    log_json: bool = _field(False, "log one JSON object per line")
    max_frame_size: int = _field(262_144, "largest accepted frame in bytes (close 1009 above)")
    max_depth: int = _field(32, "deepest nesting of arrays and objects a frame may have "
                                "(16-128); deeper CALLs get FormatViolation")
    ping_interval: float = _field(30.0, "seconds between websocket pings (0 disables)")
    ping_timeout: float = _field(30.0, "seconds to wait for a pong before dropping")
    call_timeout: float = _field(30.0, "default seconds to wait for a station's reply")
    api_token: str | None = _field(None, "bearer token required by /api (unset: no auth)")
    ws: str = _field("csms", "websocket implementation: csms (uvicorn's sans-I/O one, leaner "
                           "per connection) or any of uvicorn's (auto, websockets, wsproto)")
    graceful_timeout: float = _field(30.0, "seconds a shutdown (the SIGTERM drain) may take")
    drain_spread: float = _field(
        10.0, "seconds over which SIGTERM closes station sockets, in jittered batches")
    connect_rate: float = _field(
        1000.0, "new station connections a second this process admits (0: no limit)")
    boot_rate: float = _field(
        500.0, "BootNotifications a second accepted; beyond it Pending (0: no limit)")
    pending_interval: float = _field(60.0, "seconds (jittered) a Pending boot waits")
    proxy_headers: bool = _field(False, "trust X-Forwarded-* (TLS terminated upstream)")
    forwarded_allow_ips: str = _field("127.0.0.1", "proxies whose X-Forwarded-* is trusted")
    client_cert_header: str | None = _field(
        None, "header carrying the client certificate CN from a TLS-terminating proxy")
    ssl_certfile: str | None = _field(None, "TLS certificate (serve wss directly)")
    ssl_keyfile: str | None = _field(None, "TLS private key")
    ssl_ca_certs: str | None = _field(None, "CA bundle for client certificates (profile 3)")
    metrics: bool = _field(True, "serve Prometheus metrics at /metrics")
    redis_url: str | None = _field(
        None, "cluster mode: registry, station state, transaction ids and events in Redis")
    redis_prefix: str = _field("csms:", "prefix of every Redis key")
    lease: float = _field(30.0, "cluster mode: seconds a station's ownership lasts unrenewed")
    gc_young_every: float = _field(0.1, "seconds between young garbage collections")
    gc_full_every: float = _field(600.0, "seconds between full garbage collections")

    def __repr__(self) -> str:  # never show the API token
        shown = {f.name: ("***" if f.name == "api_token" and getattr(self, f.name) else
                          getattr(self, f.name)) for f in dataclasses.fields(self)}
        return f"Settings({shown})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        hints = get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key = env_key(f.name)
            if key in env:
                values[f.name] = parse(key, env[key], hints[f.name])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def env_key(name: str) -> str:
    return "CSMS_" + name.upper()


def parse(key: str, raw: str, kind: Any) -> Any:
    base = next((t for t in getattr(kind, "__args__", (kind,)) if t is not type(None)), str)
    if raw == "" and kind != base:
        return None
    try:
        if base is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        return base(raw)
    except ValueError as exc:
        raise SettingsError(f"{key}: {exc} (got {raw!r})") from None
