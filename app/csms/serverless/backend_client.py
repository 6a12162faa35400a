"""The gateway's HTTP/1.1 client to its backend: kept-alive connections, one request at a
time on each, responses parsed by httptools (the parser uvicorn reads requests with).

Every frame a station sends is one POST, so this is the gateway's hot path; a general
client (aiohttp) spent more on each request than the backend spends answering it.
"""

import asyncio
import ssl
from urllib.parse import urlsplit

import httptools

Answer = tuple[int, dict[str, str], bytes]  # status, headers (lower-case names), body


class BackendDown(Exception):
    """The backend could not be reached, broke the connection, or took too long."""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Answer] | None = None
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.received = False  # bytes of an answer arrived on this connection
        self.keep_alive = False  # what the last answer said (read while it is parsed)
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(BackendDown(f"malformed answer: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionResetError("the backend closed the connection"))

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.parser.get_status_code(), self.headers,
                                    b"".join(self.body)))

    async def request(self, data: bytes) -> Answer:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.headers, self.body, self.received = {}, [], False
        self.transport.write(data)
        try:
            return await self.waiter
        finally:
            self.waiter = None

    @property
    def reusable(self) -> bool:
        return not self.closed and self.keep_alive

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class BackendClient:
    """`limit` requests in flight at most (each on its own connection); more wait."""

    def __init__(self, url: str, timeout: float, limit: int = 1024) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() \
            if parts.scheme == "https" else None
        self._prefix = parts.path.rstrip("/")
        self._host_header = parts.netloc
        self._timeout = timeout
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(limit)

    async def post(self, path: str, headers: dict[str, str], body: bytes = b"") -> Answer:
        """POST to the backend; BackendDown when no answer comes (ValueError for a header
        value that would break the request)."""
        lines = [f"POST {self._prefix}{path} HTTP/1.1", f"Host: {self._host_header}",
                 f"Content-Length: {len(body)}"]
        for name, value in headers.items():
            if "\r" in value or "\n" in value:
                raise ValueError(f"{name} has a line break")
            lines.append(f"{name}: {value}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body
        async with self._slots:
            return await self._send(data)

    async def _send(self, data: bytes) -> Answer:
        while True:
            connection, reused = await self._acquire()
            try:
                async with asyncio.timeout(self._timeout):
                    answer = await connection.request(data)
            except TimeoutError:
                connection.close()
                raise BackendDown(f"no answer in {self._timeout:g} s") from None
            except (ConnectionError, OSError, BackendDown) as exc:
                connection.close()
                if reused and not connection.received:
                    continue  # the backend had closed this idle connection: a fresh one
                raise BackendDown(f"{type(exc).__name__}: {exc}") from None
            if connection.reusable:
                self._idle.append(connection)
            else:
                connection.close()
            return answer

    async def _acquire(self) -> tuple[_Connection, bool]:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection, True
        try:
            _, connection = await asyncio.get_running_loop().create_connection(
                _Connection, self._host, self._port, ssl=self._ssl)
        except OSError as exc:
            raise BackendDown(f"cannot connect: {exc}") from None
        return connection, False

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()

