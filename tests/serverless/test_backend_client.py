"""The gateway's HTTP client against small real servers on loopback: kept-alive connections,
a connection the server dropped while idle, a server that never answers, and a header value
that would split the request."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from csms.serverless.backend_client import BackendClient, BackendDown

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    return head + await reader.readexactly(length)


def answer(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nx-chosen: yes\r\n\r\n%s" % (
        len(body), body)


async def serving(serve: Serve) -> AsyncIterator[tuple[str, list[int]]]:
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/base", connections


@pytest.fixture
async def echo() -> AsyncIterator[tuple[str, list[int]]]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await read_request(reader)
            writer.write(answer(request.split(b"\r\n", 1)[0] + b"|" +
                                request.split(b"\r\n\r\n", 1)[1]))
            await writer.drain()

    async for found in serving(serve):
        yield found


async def test_requests_reuse_one_kept_alive_connection(
        echo: tuple[str, list[int]]) -> None:
    url, connections = echo
    client = BackendClient(url, timeout=5)
    for n in range(5):
        status, headers, body = await client.post("/gateway/message", {"x-n": str(n)},
                                                  f"frame {n}".encode())
        assert (status, headers["x-chosen"]) == (200, "yes")
        assert body == f"POST /base/gateway/message HTTP/1.1|frame {n}".encode()
    assert len(connections) == 1
    client.close()


async def test_a_connection_dropped_while_idle_is_replaced() -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)  # answers one request, then closes without saying so
        writer.write(answer(b"ok"))
        await writer.drain()

    async for url, connections in serving(once):
        client = BackendClient(url, timeout=5)
        assert (await client.post("/x", {}))[2] == b"ok"
        assert (await client.post("/x", {}))[2] == b"ok"  # on a new connection
        assert len(connections) == 2
        client.close()


async def test_silence_and_refusal_are_backend_down() -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.Event().wait()  # never answers

    async for url, _ in serving(mute):
        with pytest.raises(BackendDown, match=r"no answer in 0\.2 s"):
            await BackendClient(url, timeout=0.2).post("/x", {})
    with pytest.raises(BackendDown, match="cannot connect"):
        await BackendClient(url, timeout=1).post("/x", {})  # the server is gone


async def test_a_header_value_cannot_split_the_request(echo: tuple[str, list[int]]) -> None:
    url, connections = echo
    with pytest.raises(ValueError, match="line break"):
        await BackendClient(url, timeout=5).post("/x", {"x-path": "/ocpp/a\r\nX-Evil: 1"})
    assert connections == []
