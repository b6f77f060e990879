"""The HTTP signal source's reading of answers, against raw loopback servers that answer
exactly the bytes a test gives them (split, unsized, cut short), and the test server's body.
"""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from integrations.adapters.intent_adapters.testing import SignalSourceServer
from integrations.adapters.intent_adapters.testing._signal_sources import (
    MAX_BODY_BYTES,
    HttpSignalSource,
)
from integrations.base import ConnectionFailed, TransientError

pytestmark = pytest.mark.timeout(30)

BODY = json.dumps([{"topic": "a"}, {"topic": "b"}]).encode()

Answer = Callable[[asyncio.StreamWriter], Awaitable[None]]


def read_from(answer: Answer, timeout: float = 5.0) -> Any:
    """What an `HttpSignalSource` reads from a loopback server that runs `answer` per request."""

    async def main() -> Any:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            try:
                await answer(writer)
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with server:
                source = HttpSignalSource(f"http://127.0.0.1:{port}/signals", timeout=timeout)
                return await source.fetch_signals()
        finally:
            server.close()

    return asyncio.run(main())


def head(length: int | None = len(BODY), status: str = "200 OK") -> bytes:
    sized = "" if length is None else f"Content-Length: {length}\r\n"
    return f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{sized}\r\n".encode()


def test_an_answer_split_into_small_chunks_is_read_whole() -> None:
    async def answer(writer: asyncio.StreamWriter) -> None:
        raw = head() + BODY
        for start in range(0, len(raw), 7):
            writer.write(raw[start : start + 7])
            await writer.drain()
            await asyncio.sleep(0.001)

    assert read_from(answer) == [{"topic": "a"}, {"topic": "b"}]


def test_an_answer_without_a_length_ends_with_the_connection() -> None:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(head(None) + BODY[:10])
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(BODY[10:])

    assert read_from(answer) == [{"topic": "a"}, {"topic": "b"}]


def test_bytes_after_the_announced_length_are_not_read() -> None:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(head() + BODY + b"trailing garbage")

    assert read_from(answer) == [{"topic": "a"}, {"topic": "b"}]


@pytest.mark.parametrize(
    "raw",
    [
        head() + BODY[:5],  # cut short
        head(MAX_BODY_BYTES + 1),  # too large to read
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n" + BODY,  # no such length
        b"SMTP ready\r\n\r\n",  # not HTTP
        b"HTTP/1.1 200 OK\r\n",  # the head never ends
    ],
    ids=["cut-short", "too-large", "bad-length", "not-http", "no-head-end"],
)
def test_answers_that_cannot_be_read_are_connection_failures(raw: bytes) -> None:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(raw)

    with pytest.raises(ConnectionFailed):
        read_from(answer)


def test_a_server_that_never_finishes_is_a_transient_error() -> None:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(head() + BODY[:5])
        await writer.drain()
        await asyncio.sleep(10)

    with pytest.raises(TransientError, match="did not answer"):
        read_from(answer, timeout=0.2)


def test_the_server_answers_its_signals_as_json_and_new_ones_once_set() -> None:
    with SignalSourceServer([{"topic": "first"}]) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        connection.request("GET", "/signals")
        response = connection.getresponse()
        assert response.getheader("Content-Type") == "application/json"
        assert json.loads(response.read()) == [{"topic": "first"}]
        connection.close()
        server.set_signals([{"topic": "second"}])
        assert asyncio.run(server.source().fetch_signals()) == [{"topic": "second"}]
