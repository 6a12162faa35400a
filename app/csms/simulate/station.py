"""One simulated station: connect, boot, heartbeat, charge, answer the central system."""

import asyncio
import base64
import contextlib
import logging
import random
import ssl
import time
from typing import Any

import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from csms.clock import now
from csms.protocol.errors import OcppException
from csms.protocol.router import tables
from csms.protocol.session import NoHooks, Session
from csms.protocol.versions import V16, subprotocol
from csms.simulate import messages
from csms.simulate.behaviour import StationModel, router
from csms.simulate.stats import Stats

logger = logging.getLogger("csms.simulate")


class _CommandCounter(NoHooks):
    """Counts the central system's CALLs this station answered."""

    def __init__(self, stats: Stats) -> None:
        self._stats = stats

    def inbound(self, version: str, action: str, outcome: str, seconds: float) -> None:
        if outcome == "ok":
            self._stats.commands += 1


class SimulatedStation:
    def __init__(self, sid: str, options: Any, stats: Stats,
                 stop: asyncio.Event | None = None) -> None:
        """`stop`, once set, makes the station close its socket normally (1000) and end."""
        self.sid = sid
        self.stop = stop or asyncio.Event()
        self._reboot = asyncio.Event()
        self.options = options
        self.version: str = options.version
        self.stats = stats
        self.model = StationModel(self.version)
        self.table = tables([router(self.model)])[self.version]
        self.session: Session | None = None
        self.interval = 300.0
        self.tx: messages.Transaction | None = None
        self._background: set[asyncio.Task[None]] = set()

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        assert self.session is not None
        start = time.perf_counter()
        try:
            result = await self.session.call(action, payload, timeout=30)
        except OcppException as exc:
            self.stats.error(type(exc).__name__)
            return None
        self.stats.call_done(time.perf_counter() - start)
        return result

    def _headers(self) -> dict[str, str]:
        if self.options.password is None:
            return {}
        token = base64.b64encode(f"{self.sid}:{self.options.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def _tls(self, url: str) -> ssl.SSLContext | None:
        """For wss://: the system's CAs, or --ca-certs (a CSO's own CA), and --client-cert
        (security profile 3)."""
        if not url.startswith("wss://"):
            return None
        context = ssl.create_default_context(cafile=self.options.ca_certs)
        if self.options.client_cert:
            context.load_cert_chain(self.options.client_cert, self.options.client_key)
        return context

    async def run(self) -> None:
        url = f"{self.options.url.rstrip('/')}/{self.sid}"
        backoff = 1.0
        while not self.stop.is_set():
            try:
                async with websockets.connect(
                    url, subprotocols=[subprotocol(self.version)],  # type: ignore[list-item]
                    additional_headers=self._headers(), open_timeout=30, ping_interval=None,
                    max_size=None, ssl=self._tls(url),
                ) as ws:
                    backoff = 1.0
                    await self._connected(ws)
            except InvalidStatus as exc:
                self.stats.refused += 1
                self.stats.error(f"http_{exc.response.status_code}")
                if exc.response.status_code in (400, 401, 403, 404):
                    return  # the server will not change its mind
            except (OSError, ConnectionClosed, TimeoutError) as exc:
                self.stats.error(type(exc).__name__)
            if self._reboot.is_set():  # back up after a moment, as a rebooted station is
                self._reboot.clear()
                pause = random.uniform(0.5, 1.5)
            else:
                pause = backoff * random.uniform(0.5, 1.5)
                backoff = min(backoff * 2, 60.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), pause)

    async def _connected(self, ws: Any) -> None:
        async def send(text: str) -> None:
            await ws.send(text)

        self.session = Session(self.sid, self.version, self.table, send,
                               hooks=_CommandCounter(self.stats))
        self.stats.connected += 1
        self.stats.connects += 1
        reader = asyncio.create_task(self._read(ws))
        work = asyncio.create_task(self._operate())
        stopping = asyncio.create_task(self.stop.wait())
        rebooting = asyncio.create_task(self._reboot.wait())
        tasks = (reader, work, stopping, rebooting)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if self.stop.is_set() or self._reboot.is_set():  # a normal close, not a drop
                with contextlib.suppress(ConnectionClosed, TimeoutError):
                    await asyncio.wait_for(
                        ws.close(1000, "rebooting" if self._reboot.is_set() else "stopping"), 5)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.session.close("disconnected")
            self.stats.connected -= 1
            if self._reboot.is_set():
                self.stats.reboots += 1
            else:
                self.stats.disconnects += 1

    async def _read(self, ws: Any) -> None:
        assert self.session is not None
        async for frame in ws:
            self.session.receive(frame)

    async def _operate(self) -> None:
        while True:  # boot until accepted, at the interval the server asks for
            result = await self.call("BootNotification", messages.boot(self.version, self.sid))
            if result is not None:
                self.interval = float(result["interval"]) or 300.0
                if result["status"] == "Accepted":
                    break
            await asyncio.sleep(self.interval if result else 5.0)
        await self.call("StatusNotification", messages.status(self.version, "Available"))
        tasks = [asyncio.create_task(self._heartbeat()), asyncio.create_task(self._charge()),
                 asyncio.create_task(self._commands())]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()

    async def _heartbeat(self) -> None:
        every = self.options.heartbeat or self.interval
        while True:
            await asyncio.sleep(every * random.uniform(0.9, 1.1))
            await self.call("Heartbeat", {})

    async def _charge(self) -> None:
        while True:
            await asyncio.sleep(random.expovariate(1.0 / self.options.session_every))
            await self.session_cycle(self.options.id_tag)

    async def _commands(self) -> None:
        while True:
            kind, payload = await self.model.commands.get()
            if kind == "start" and self.tx is None:
                token = payload.get("idTag") or payload.get("idToken", {}).get("idToken", "")
                task = asyncio.create_task(self.session_cycle(token or self.options.id_tag))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            elif kind == "stop" and self.tx is not None:
                self.tx.wh = -1.0  # ends the running session at its next sample
            elif kind == "reset":
                self._reboot.set()  # _connected closes the socket; run() reconnects and boots
                return
            elif kind == "trigger":
                requested = payload.get("requestedMessage")
                if requested == "Heartbeat":
                    await self.call("Heartbeat", {})
                elif requested == "StatusNotification":
                    await self.call("StatusNotification",
                                    messages.status(self.version, "Available"))

    async def session_cycle(self, token: str) -> None:
        """Authorize, start, meter for a while, stop."""
        if self.tx is not None:
            return
        auth = await self.call("Authorize", messages.authorize(self.version, token))
        info = (auth or {}).get("idTagInfo") or (auth or {}).get("idTokenInfo") or {}
        if info.get("status") != "Accepted":
            return
        tx = self.tx = messages.Transaction(self.version, token)
        await self.call("StatusNotification", messages.status(self.version, "Charging"))
        if self.version == V16:
            started = await self.call("StartTransaction", {
                "connectorId": 1, "idTag": token, "meterStart": 0,
                "timestamp": now()})
            tx.server_id = (started or {}).get("transactionId", 0)
        else:
            await self.call("TransactionEvent", tx.event("Started", "Authorized"))
        for _ in range(random.randint(2, 6)):
            await asyncio.sleep(self.options.meter_every)
            if tx.wh < 0:
                break
            watts = random.uniform(3000, 11000)
            tx.wh += watts * self.options.meter_every / 3600
            if self.version == V16:
                await self.call("MeterValues",
                                messages.meter_values(self.version, tx.server_id, tx.wh, watts))
            else:
                await self.call("TransactionEvent", tx.event("Updated", "MeterValuePeriodic",
                                                             watts))
        tx.wh = max(tx.wh, 0.0)
        if self.version == V16:
            await self.call("StopTransaction", {
                "transactionId": tx.server_id, "meterStop": int(tx.wh), "idTag": token,
                "timestamp": now(), "reason": "Local"})
        else:
            await self.call("TransactionEvent", tx.event("Ended", "StopAuthorized"))
        await self.call("StatusNotification", messages.status(self.version, "Available"))
        self.tx = None
