"""Kopf handlers: thin and idempotent; the mapping is `csms_operator.mapping`, the Redis side
`csms_operator.store`.

- create / update / resume: resolve the password from its Secret, write the registry entry
  (a salted PBKDF2 hash only), tell a connected station's pod to push changed configuration
  or to close a disabled station's socket;
- delete (finalizer): remove the entry and close the station's socket; it then gets 404;
- a Secret that changes: re-hash the password of every station that refers to it;
- one loop for all stations: their live state read from Redis in pipelined batches every
  `CSMS_OPERATOR_STATUS_EVERY` seconds into `.status`, written only when it changed and at
  most `CSMS_OPERATOR_STATUS_RATE` writes a second, with Events on notable transitions.
  (Not a kopf timer per resource: 10,000 timers cost more than one loop.)
"""

import asyncio
import datetime
import hashlib
import hmac
import logging
import os
import time
from typing import Any

import kopf

from csms.config import SettingsError
from csms.observability.redaction import install, url_passwords
from csms.state.credentials import verify_password
from csms.state.registry import RegistryError, StationEntry, secret_value
from csms_operator import mapping, metrics
from csms_operator.config import GROUP, PLURAL, VERSION, OperatorConfig
from csms_operator.kube import KubeApi

BATCH = 500  # stations read from Redis in one pipeline


class Pacer:
    """At most `rate` status writes a second across all resources."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        at = max(now, self._next)
        self._next = at + self._interval
        if at > now:
            await asyncio.sleep(at - now)


class Hashes:
    """The hash last written per station, keyed by a per-process HMAC of its password: an
    unchanged password is not hashed again (PBKDF2 is slow on purpose)."""

    def __init__(self) -> None:
        self._key = os.urandom(32)
        self._known: dict[str, tuple[bytes, str]] = {}

    def _tag(self, password: str) -> bytes:
        return hmac.new(self._key, password.encode(), hashlib.sha256).digest()

    def known(self, station_id: str, password: str | None) -> str | None:
        seen = self._known.get(station_id)
        if password is None or seen is None or not hmac.compare_digest(seen[0],
                                                                        self._tag(password)):
            return None
        return seen[1]

    def remember(self, station_id: str, password: str | None, encoded: str | None) -> None:
        if password is not None and encoded is not None:
            self._known[station_id] = (self._tag(password), encoded)


def now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger,
                  **_: Any) -> None:
    from csms.cluster import connect
    from csms_operator.store import Store

    settings.persistence.finalizer = "csms.dev/registry"
    settings.posting.level = logging.WARNING  # only warnings become Events, not every log
    try:
        cfg = OperatorConfig.from_env()
    except SettingsError as exc:
        raise kopf.PermanentError(str(exc)) from None
    # Every record of this process from now on, kopf's and the clients' included.
    install(*url_passwords(cfg.redis_url))
    memo.kube = KubeApi.login(settings)
    memo.stations = {}
    memo.redis = connect(cfg.redis_url, max_connections=32)
    await memo.redis.ping()
    memo.store = Store(memo.redis, cfg.redis_prefix)
    memo.pacer = Pacer(cfg.status_rate)
    memo.hashes = Hashes()
    memo.status_task = asyncio.get_running_loop().create_task(
        status_loop(memo, cfg.status_every, logger))
    memo.metrics = metrics.serve(cfg.metrics_port) if cfg.metrics_port else None
    logger.info("registry in Redis at %s (prefix %r)", cfg.redis_url, cfg.redis_prefix)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    memo.status_task.cancel()
    await asyncio.gather(memo.status_task, return_exceptions=True)
    if memo.metrics is not None:
        memo.metrics.shutdown()
        memo.metrics.server_close()
    await memo.redis.aclose()
    await memo.kube.close()


@kopf.on.probe(id="redis")
async def redis_reachable(memo: kopf.Memo, **_: Any) -> bool:
    return bool(await memo.redis.ping())


async def read_password(memo: kopf.Memo, namespace: str, ref: tuple[str, str]) -> str | None:
    name, key = ref
    secret = await memo.kube.secret(namespace, name)
    if secret is None:
        raise kopf.TemporaryError(f"Secret {name!r} not found", delay=15)
    try:
        return secret_value({"data": secret.get("data") or {}}, key)
    except RegistryError as exc:
        raise kopf.PermanentError(f"Secret {name!r}: {exc}") from None


async def known_hash(memo: kopf.Memo, sid: str, password: str | None,
                     previous: StationEntry | None) -> str | None:
    """The stored hash if it is still this password's: an unchanged password keeps its entry
    byte for byte (the pods' verified-password caches stay valid), also after a restart."""
    known: str | None = memo.hashes.known(sid, password)
    if known is None and password is not None and previous and previous.password_hash and \
            await asyncio.to_thread(verify_password, password, previous.password_hash):
        known = previous.password_hash
    return known


async def register(memo: kopf.Memo, body: kopf.Body, name: str, namespace: str,
                   spec: dict[str, Any], status: dict[str, Any],
                   password: str | None) -> dict[str, Any]:
    """Write the station's entry; the new status. Raises mapping.Invalid."""
    store = memo.store
    sid = mapping.station_id(name, spec)
    previous = await store.get(sid)
    known = await known_hash(memo, sid, password, previous)
    # Hashing is slow on purpose: off the event loop.
    entry = await asyncio.to_thread(mapping.entry_for, name, namespace, spec, password, known)
    memo.hashes.remember(sid, password, entry.password_hash)
    old_id = status.get("stationId")
    if old_id and old_id != sid:  # spec.stationId changed: the old identity goes
        await store.remove(old_id)
        await store.tell(old_id, "evict")
    await store.put(entry)
    changed = mapping.changed_keys(previous.configuration if previous else None,
                                   entry.configuration)
    if previous is not None and changed:
        await store.forget_outcomes(sid, changed)
        if entry.enabled and await store.tell(sid, "configure", keys=changed):
            kopf.info(body, reason="ConfigurationPushed",
                      message=f"sent to the connected station: {', '.join(changed)}")
    if not entry.enabled and (previous is None or previous.enabled):
        await store.tell(sid, "evict")
        kopf.event(body, type="Normal", reason="Disabled",
                   message=f"station {sid} is disabled: refused and disconnected")
    return mapping.status_for(entry, await store.live(sid), status, now())


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
async def reconcile(memo: kopf.Memo, body: kopf.Body, name: str, namespace: str | None,
                    spec: kopf.Spec, status: kopf.Status, patch: kopf.Patch,
                    **_: Any) -> None:
    assert namespace is not None  # the resource is namespaced
    ref = mapping.secret_ref(spec)
    started, outcome = time.perf_counter(), "error"
    try:
        password = await read_password(memo, namespace, ref) if ref else None
        patch.status.update(await register(memo, body, name, namespace, dict(spec),
                                           dict(status), password))
        outcome = "ok"
    except mapping.Invalid as exc:
        outcome = "invalid"
        patch.status["conditions"] = [{"type": "Registered", "status": "False",
                                       "reason": "Invalid", "message": str(exc),
                                       "lastTransitionTime": now()}]
        raise kopf.PermanentError(str(exc)) from None
    except kopf.TemporaryError as exc:
        outcome = "secret_missing"
        patch.status["conditions"] = [{"type": "Registered", "status": "False",
                                       "reason": "SecretMissing", "message": str(exc),
                                       "lastTransitionTime": now()}]
        raise
    finally:
        metrics.RECONCILES.labels(outcome).inc()
        metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def unregister(memo: kopf.Memo, name: str, spec: kopf.Spec, status: kopf.Status,
                     logger: kopf.Logger, **_: Any) -> None:
    sid = status.get("stationId") or mapping.station_id(name, spec)
    await memo.store.remove(sid)
    if await memo.store.tell(sid, "evict"):
        logger.info("%s removed from the registry and disconnected", sid)


@kopf.index(GROUP, VERSION, PLURAL)
def stations_by_secret(namespace: str | None, name: str, spec: kopf.Spec,
                       **_: Any) -> dict[tuple[str | None, str], dict[str, Any]] | None:
    ref = mapping.secret_ref(spec)
    return {(namespace, ref[0]): {"name": name, "spec": dict(spec)}} if ref else None


@kopf.on.event("", "v1", "secrets")
async def secret_changed(type: str, body: kopf.Body, name: str, namespace: str | None,
                         memo: kopf.Memo, logger: kopf.Logger, **kwargs: Any) -> None:
    """A rotated password is re-hashed at once; the resource is not touched."""
    if type == "DELETED":
        return
    index: kopf.Index[tuple[str | None, str], dict[str, Any]] = kwargs["stations_by_secret"]
    for station in index.get((namespace, name), []):
        spec = station["spec"]
        ref = mapping.secret_ref(spec)
        assert ref is not None
        sid = mapping.station_id(station["name"], spec)
        try:
            password = secret_value({"data": body.get("data") or {}}, ref[1])
        except RegistryError as exc:
            logger.warning("Secret %s: %s", name, exc)
            continue
        if password is None or await known_hash(memo, sid, password,
                                                await memo.store.get(sid)) is not None:
            continue  # the key is missing, or the password did not change
        try:
            entry = await asyncio.to_thread(mapping.entry_for, station["name"], namespace,
                                            spec, password)
        except mapping.Invalid as exc:
            logger.warning("%s: %s", sid, exc)
            continue
        memo.hashes.remember(sid, password, entry.password_hash)
        await memo.store.put(entry)
        logger.info("%s: password from Secret %s re-hashed", sid, name)


@kopf.on.event(GROUP, VERSION, PLURAL)
def track(type: str, name: str, namespace: str | None, body: kopf.Body, memo: kopf.Memo,
          **_: Any) -> None:
    """The resources the status loop looks after, with their last known status."""
    key = (namespace, name)
    if type == "DELETED" or body.get("metadata", {}).get("deletionTimestamp"):
        memo.stations.pop(key, None)
    else:
        memo.stations[key] = {"name": name, "namespace": namespace,
                              "uid": body.get("metadata", {}).get("uid"),
                              "spec": dict(body.get("spec") or {}),
                              "status": dict(body.get("status") or {})}
    metrics.STATIONS.set(len(memo.stations))


async def status_loop(memo: kopf.Memo, every: float, logger: kopf.Logger) -> None:
    """Every `every` seconds: the live state of all stations from Redis in pipelined
    batches, and a status write for each one that changed, paced across all of them."""
    while True:
        await asyncio.sleep(every)
        started = time.perf_counter()
        try:
            await refresh_all(memo)
            metrics.STATUS_PASS_SECONDS.set(time.perf_counter() - started)
        except Exception:
            logger.exception("status refresh failed; retried in %.0f s", every)


async def refresh_all(memo: kopf.Memo) -> int:
    """One pass over every station; the number of statuses written."""
    resources = list(memo.stations.values())
    written = 0
    for start in range(0, len(resources), BATCH):
        batch = resources[start:start + BATCH]
        ids = [r["status"].get("stationId") or mapping.station_id(r["name"], r["spec"])
               for r in batch]
        states = await memo.store.many(ids)
        for resource, (entry, live) in zip(batch, states, strict=True):
            if entry is None:
                continue  # not registered (invalid, or its Secret is missing)
            old = resource["status"]
            new = mapping.status_for(entry, live, old, now())
            if not mapping.differs(old, new):
                continue
            await memo.pacer.wait()
            await write_status(memo, resource, new)
            resource["status"] = {**old, **new}
            written += 1
            for kind, reason, message in mapping.events(old, new):
                await post_event(memo, resource, kind, reason, message)
    return written


async def post_event(memo: kopf.Memo, resource: dict[str, Any], kind: str, reason: str,
                     message: str) -> None:
    """A Kubernetes Event on the resource (outside a handler, so not through kopf.event)."""
    await memo.kube.post_event(
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ChargingStation",
         "name": resource["name"], "namespace": resource["namespace"], "uid": resource["uid"]},
        kind, reason, message, component="csms-operator")


async def write_status(memo: kopf.Memo, resource: dict[str, Any],
                       status: dict[str, Any]) -> None:
    # A resource deleted meanwhile has nothing to show: patch_status answers False.
    await memo.kube.patch_status(GROUP, VERSION, PLURAL, resource["namespace"],
                                 resource["name"], status)
    metrics.STATUS_WRITES.inc()
