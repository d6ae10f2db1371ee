"""paybatch's HTTP/1.1 transport, byte by byte, against a scripted server on 127.0.0.1.

Each test runs on asyncio's own loop and on uvloop (what the CLI uses).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import ssl
import struct
import sys
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
import trustme

from batch import transport
from batch.policy import Outcome, outcome_of_error, outcome_of_status
from batch.transport import HttpTransport

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Run[Any]:
    if request.param == "uvloop":
        if sys.platform == "win32":
            pytest.skip("uvloop does not run on Windows")
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop

    def go(main: Coroutine[Any, Any, T]) -> T:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main)

    return go


@dataclass
class Reply:
    """Bytes to write back, one write per piece; then maybe close, or never answer."""

    pieces: tuple[bytes, ...] = ()
    close: bool = False
    hang: bool = False
    reset: bool = False  # close with an RST instead of a FIN
    hold: bool = False  # after the pieces, keep the connection open and say nothing more


def ok(body: bytes = b"ok", *extra: bytes) -> Reply:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" % len(body) + b"".join(extra)
    return Reply((head + b"\r\n" + body,))


@dataclass
class Wire:
    """A scripted server: the n-th request (from 1) gets `answer(n)`."""

    answer: Callable[[int], Reply]
    server_ssl: ssl.SSLContext | None = None
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    client_closed: int = 0
    url: str = ""
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def until(self, condition: Callable[[], object]) -> None:
        """Wait (at most 5 s) until `condition()` holds; it is checked after every change."""
        async with asyncio.timeout(5):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def __aenter__(self) -> Wire:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.server_ssl)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.server_ssl else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:  # handlers end on their own: nothing left to cancel
            writer.close()
        await self.until(lambda: not self.open_now)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while (request := await _read_request(reader)) is not None:
                self.requests.append(request)
                self._changed.set()
                reply = self.answer(len(self.requests))
                if reply.hang:
                    await reader.read()  # until the client gives up and closes
                    break
                for piece in reply.pieces:
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.001)
                if reply.hold:
                    await reader.read()
                    break
                if reply.reset:
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                if reply.close:
                    return
            self.client_closed += 1
        except ConnectionError:
            pass
        finally:
            self.open_now -= 1
            self._changed.set()
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


def client(max_connections: int = 4, timeout: float = 5.0, **kw: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=HttpTransport(max_connections=max_connections, **kw),
        timeout=httpx.Timeout(timeout, pool=None),
    )


async def get_all(wire: Wire, times: int, pause: float = 0.0) -> list[httpx.Response]:
    answers = []
    async with client() as c:
        for _ in range(times):
            answers.append(await c.get(wire.url + "/x"))
            await asyncio.sleep(pause)
    return answers


def test_keep_alive_answers_reuse_one_connection(run: Run[Any]) -> None:
    async def main() -> tuple[Wire, list[httpx.Response]]:
        async with Wire(lambda n: ok(b"answer %d" % n)) as wire:
            return wire, await get_all(wire, 3)

    wire, answers = run(main())
    assert [a.text for a in answers] == ["answer 1", "answer 2", "answer 3"]
    assert wire.connections == 1


def test_a_post_goes_out_whole_with_its_length(run: Run[Any]) -> None:
    async def main() -> Wire:
        async with Wire(lambda n: ok()) as wire, client() as c:
            await c.post(wire.url + "/api/external_payments?x=1", json={"a": "é"})
            await c.post(wire.url + "/empty")
            return wire

    wire = run(main())
    first, empty = wire.requests
    assert first.startswith(b"POST /api/external_payments?x=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nContent-Length: 10\r\n" in first
    assert first.endswith(b'\r\n\r\n{"a":"\xc3\xa9"}')
    assert b"\r\nContent-Length: 0\r\n" in empty


def test_a_chunked_answer_in_tiny_pieces_reads_back_whole(run: Run[Any]) -> None:
    wire_bytes = (
        b"HTTP/1.1 201 Created\r\nX-Ratelimit-Remaining: 42\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n1\r\n,\r\n6\r\n world\r\n0\r\n\r\n"
    )
    pieces = tuple(wire_bytes[i : i + 7] for i in range(0, len(wire_bytes), 7))

    async def main() -> tuple[Wire, list[httpx.Response]]:
        async with Wire(lambda n: Reply(pieces)) as wire:
            return wire, await get_all(wire, 2)

    wire, answers = run(main())
    for answer in answers:
        assert (answer.status_code, answer.text) == (201, "hello, world")
        assert answer.headers["x-ratelimit-remaining"] == "42"
    assert wire.connections == 1


def test_a_body_ended_by_closing_reads_back_whole_and_is_not_reused(run: Run[Any]) -> None:
    reply = Reply((b"HTTP/1.1 200 OK\r\n\r\n", b"all of ", b"it"), close=True)

    async def main() -> tuple[Wire, list[httpx.Response]]:
        async with Wire(lambda n: reply) as wire:
            return wire, await get_all(wire, 2)

    wire, answers = run(main())
    assert [a.text for a in answers] == ["all of it", "all of it"]
    assert wire.connections == 2


def test_connection_close_is_honoured_even_if_the_server_keeps_the_socket(run: Run[Any]) -> None:
    async def main() -> tuple[Wire, list[httpx.Response]]:
        async with Wire(lambda n: ok(b"x", b"Connection: close\r\n")) as wire:
            return wire, await get_all(wire, 2)

    wire, answers = run(main())
    assert [a.status_code for a in answers] == [200, 200]
    assert wire.connections == 2


def test_an_interim_100_continue_is_skipped(run: Run[Any]) -> None:
    final = ok(b"final").pieces[0]

    async def main() -> list[httpx.Response]:
        async with Wire(lambda n: Reply((b"HTTP/1.1 100 Continue\r\n\r\n", final))) as wire:
            return await get_all(wire, 2)

    assert [a.text for a in run(main())] == ["final", "final"]


def test_an_idle_connection_the_server_closed_is_not_reused(run: Run[Any]) -> None:
    reply = Reply(ok(b"x").pieces, close=True)  # says keep-alive, then hangs up

    async def main() -> tuple[Wire, list[httpx.Response]]:
        async with Wire(lambda n: reply) as wire:
            return wire, await get_all(wire, 3, pause=0.05)

    wire, answers = run(main())
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert wire.connections == 3


def test_a_connection_idle_past_the_expiry_is_not_reused(
    run: Run[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "KEEPALIVE_EXPIRY", 0.02)

    async def main() -> Wire:
        async with Wire(lambda n: ok()) as wire:
            await get_all(wire, 2, pause=0.1)
            return wire

    assert run(main()).connections == 2


def test_bytes_after_the_answer_make_the_connection_unusable(run: Run[Any]) -> None:
    answer = ok(b"x").pieces[0]

    async def main() -> tuple[Wire, list[httpx.Response]]:
        async with Wire(lambda n: Reply((answer + answer,))) as wire:  # one answer too many
            return wire, await get_all(wire, 2)

    wire, answers = run(main())
    assert [a.text for a in answers] == ["x", "x"]
    assert wire.connections == 2


def test_at_most_max_connections_are_open(run: Run[Any]) -> None:
    async def main() -> tuple[Wire, list[httpx.Response]]:
        reply = Reply((b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", b"ok"))
        async with Wire(lambda n: reply) as wire, client(max_connections=2) as c:
            answers = await asyncio.gather(*(c.get(wire.url) for _ in range(12)))
            return wire, list(answers)

    wire, answers = run(main())
    assert [a.text for a in answers] == ["ok"] * 12
    assert wire.most_open == 2
    assert len(wire.requests) == 12


async def expect_error(
    send: Callable[[httpx.AsyncClient], Awaitable[object]], **kw: Any
) -> httpx.TransportError:
    async with client(**kw) as c:
        with pytest.raises(httpx.TransportError) as caught:
            await send(c)
    return caught.value


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply((b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nonly5",), close=True), "ReadError"),
        (Reply(close=True), "ReadError"),
        (Reply((b"SMTP ready\r\n\r\n",)), "RemoteProtocolError"),
        (Reply((b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",)), "RemoteProtocolError"),
    ],
    ids=["cut-mid-body", "closed-before-answer", "not-http", "bad-length"],
)
def test_a_broken_answer_after_sending_is_unknown(run: Run[Any], reply: Reply, error: str) -> None:
    async def main() -> tuple[Wire, httpx.TransportError]:
        async with Wire(lambda n: reply) as wire:
            return wire, await expect_error(lambda c: c.post(wire.url, json={"a": 1}))

    wire, caught = run(main())
    assert type(caught).__name__ == error
    assert outcome_of_error(caught) is Outcome.UNKNOWN
    assert len(wire.requests) == 1  # the server did get it: it may have acted on it


def test_no_answer_in_time_is_a_read_timeout_and_the_connection_is_dropped(run: Run[Any]) -> None:
    async def main() -> tuple[Wire, httpx.TransportError, httpx.Response]:
        async with Wire(lambda n: Reply(hang=True) if n == 1 else ok()) as wire:
            async with client(timeout=0.2) as c:
                with pytest.raises(httpx.ReadTimeout) as caught:
                    await c.post(wire.url, json={})
                after = await c.post(wire.url, json={})
            return wire, caught.value, after

    wire, caught, after = run(main())
    assert outcome_of_error(caught) is Outcome.UNKNOWN
    assert after.status_code == 200
    assert wire.connections == 2


def test_waiting_too_long_for_a_connection_is_never_sent(run: Run[Any]) -> None:
    async def main() -> tuple[Wire, BaseException]:
        async with Wire(lambda n: Reply(hang=True)) as wire:
            async with httpx.AsyncClient(
                transport=HttpTransport(max_connections=1),
                timeout=httpx.Timeout(2.0, pool=0.1),
            ) as c:
                first = asyncio.create_task(c.post(wire.url, json={}))
                await asyncio.sleep(0.05)
                with pytest.raises(httpx.PoolTimeout) as caught:
                    await c.post(wire.url, json={})
                first.cancel()
            return wire, caught.value

    wire, caught = run(main())
    assert isinstance(caught, httpx.PoolTimeout)
    assert outcome_of_error(caught) is Outcome.NOT_SENT
    assert len(wire.requests) == 1


def test_a_cancelled_request_frees_its_connection_slot(run: Run[Any]) -> None:
    async def main() -> tuple[Wire, httpx.Response]:
        hang_first = Wire(lambda n: Reply(hang=True) if n == 1 else ok())
        async with hang_first as wire, client(max_connections=1) as c:
            first = asyncio.create_task(c.post(wire.url, json={}))
            await wire.until(lambda: wire.requests)
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            await wire.until(lambda: wire.client_closed)  # the abandoned connection is closed
            return wire, await asyncio.wait_for(c.post(wire.url, json={}), 2.0)

    wire, after = run(main())
    assert after.status_code == 200
    assert wire.connections == 2


def test_a_slow_connect_is_a_connect_timeout_and_never_sent() -> None:
    async def main() -> httpx.TransportError:
        async def stuck(*args: object, **kwargs: object) -> None:
            await asyncio.sleep(10)

        loop = asyncio.get_running_loop()
        loop.create_connection = stuck  # type: ignore[method-assign,assignment]
        async with httpx.AsyncClient(
            transport=HttpTransport(max_connections=1), timeout=httpx.Timeout(5.0, connect=0.1)
        ) as c:
            with pytest.raises(httpx.TransportError) as caught:
                await c.post("http://127.0.0.1:9/x", json={})
        return caught.value

    caught = asyncio.run(main())  # asyncio's loop: uvloop's methods cannot be replaced
    assert isinstance(caught, httpx.ConnectTimeout)
    assert outcome_of_error(caught) is Outcome.NOT_SENT


def test_a_header_with_a_line_break_is_never_sent(run: Run[Any]) -> None:
    async def main() -> tuple[Wire, httpx.TransportError]:
        async with Wire(lambda n: ok()) as wire:
            send = lambda c: c.get(wire.url, headers={"X-Ref": "a\r\nX-Evil: 1"})  # noqa: E731
            return wire, await expect_error(send)

    wire, caught = run(main())
    assert isinstance(caught, httpx.LocalProtocolError)
    assert outcome_of_error(caught) is Outcome.PERMANENT
    assert wire.connections == 0


def test_closing_the_client_closes_its_connections(run: Run[Any]) -> None:
    async def main() -> Wire:
        async with Wire(lambda n: ok()) as wire:
            await get_all(wire, 1)
            await asyncio.sleep(0.05)
            return wire

    assert run(main()).client_closed == 1


def test_only_http_and_https_are_spoken(run: Run[Any]) -> None:
    async def main() -> None:
        with pytest.raises(httpx.UnsupportedProtocol) as caught:
            await HttpTransport(max_connections=1).handle_async_request(
                httpx.Request("GET", "ftp://127.0.0.1/x")
            )
        assert outcome_of_error(caught.value) is Outcome.PERMANENT

    run(main())


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_server(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


def test_https_to_a_trusted_server(run: Run[Any], ca: trustme.CA) -> None:
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)

    async def main() -> list[httpx.Response]:
        wire = Wire(lambda n: ok(b"secret"), server_ssl=tls_server(ca))
        async with wire, client(ssl_context=trusting) as c:
            return [await c.get(wire.url), await c.get(wire.url)]

    assert [a.text for a in run(main())] == ["secret", "secret"]


def test_https_to_an_untrusted_server_is_never_sent(run: Run[Any], ca: trustme.CA) -> None:
    async def main() -> tuple[Wire, httpx.TransportError]:
        async with Wire(lambda n: ok(), server_ssl=tls_server(ca)) as wire:
            return wire, await expect_error(lambda c: c.post(wire.url, json={}))

    wire, caught = run(main())
    assert isinstance(caught, httpx.ConnectError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught)
    assert outcome_of_error(caught) is Outcome.NOT_SENT
    assert wire.requests == []


@contextlib.contextmanager
def thread_server(serve: Callable[[socket.socket, int], None], count: int) -> Iterator[int]:
    """A server in a thread, so that it can act while the client's loop is blocked: it
    accepts `count` connections and hands each to `serve(connection, number from 1)`."""
    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        for number in range(1, count + 1):
            conn, _ = listener.accept()
            with conn:
                serve(conn, number)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(5)
        listener.close()


def test_bytes_waiting_on_an_idle_connection_are_nobodys_answer(run: Run[Any]) -> None:
    """A late 408 lands while the loop is busy: the next request must not take it."""
    late = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    seen: list[bytes] = []

    def serve(conn: socket.socket, number: int) -> None:
        seen.append(conn.recv(65536))
        conn.sendall(ok().pieces[0] + (late if number == 1 else b""))

    async def main(port: int) -> httpx.Response:
        async with client() as c:
            await c.post(f"http://127.0.0.1:{port}/", json={"n": 1})
            time.sleep(0.2)  # noqa: ASYNC251 - the loop is busy while the 408 and FIN arrive
            return await c.post(f"http://127.0.0.1:{port}/", json={"n": 2})

    with thread_server(serve, 2) as port:
        second = run(main(port))
    assert second.status_code == 200
    assert len(seen) == 2  # the second request really went, on a new connection


def test_a_reset_in_a_body_ended_by_closing_is_not_an_answer(run: Run[Any]) -> None:
    async def main() -> tuple[Wire, httpx.TransportError]:
        reply = Reply((b"HTTP/1.1 200 OK\r\n\r\n", b'{"data": {"id": "p'), reset=True)
        async with Wire(lambda n: reply) as wire:
            return wire, await expect_error(lambda c: c.post(wire.url, json={}))

    _, caught = run(main())
    assert isinstance(caught, httpx.ReadError)
    assert outcome_of_error(caught) is Outcome.UNKNOWN


def test_a_chunked_trailer_never_stands_in_for_a_header(run: Run[Any]) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.api+json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nContent-Type: text/evil\r\n\r\n"
    )

    async def main() -> list[httpx.Response]:
        async with Wire(lambda n: Reply((answer,))) as wire:
            return await get_all(wire, 1)

    (response,) = run(main())
    assert response.text == "ok"
    assert response.headers.get_list("content-type") == ["application/vnd.api+json"]


def test_switching_protocols_is_a_protocol_error_not_a_crash(
    run: Run[Any], caplog: pytest.LogCaptureFixture
) -> None:
    upgrade = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"

    async def main() -> httpx.TransportError:
        async with Wire(lambda n: Reply((upgrade,))) as wire:
            return await expect_error(lambda c: c.post(wire.url, json={}))

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        caught = run(main())
    assert isinstance(caught, httpx.RemoteProtocolError)
    assert outcome_of_error(caught) is Outcome.UNKNOWN
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_head_is_refused_before_anything_is_sent(run: Run[Any]) -> None:
    async def main() -> tuple[Wire, httpx.TransportError]:
        async with Wire(lambda n: ok()) as wire:
            return wire, await expect_error(lambda c: c.head(wire.url))

    wire, caught = run(main())
    assert isinstance(caught, httpx.UnsupportedProtocol)
    assert outcome_of_error(caught) is Outcome.PERMANENT
    assert wire.connections == 0


@pytest.mark.parametrize(("keep_alive", "connections"), [(b"timeout=1", 2), (b"timeout=30", 1)])
def test_the_servers_keep_alive_timeout_is_honoured(
    run: Run[Any], keep_alive: bytes, connections: int
) -> None:
    async def main() -> Wire:
        async with Wire(lambda n: ok(b"x", b"Keep-Alive: " + keep_alive + b"\r\n")) as wire:
            await get_all(wire, 2, pause=0.05)
            return wire

    assert run(main()).connections == connections


def test_closing_the_client_leaves_no_tls_connection_behind(run: Run[Any], ca: trustme.CA) -> None:
    """The server never answers the TLS goodbye: closing must not wait on it, nor leak."""
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    server_side = tls_server(ca)
    done = threading.Event()

    def serve(conn: socket.socket, number: int) -> None:
        with server_side.wrap_socket(conn, server_side=True) as tls:
            tls.recv(65536)
            tls.sendall(ok().pieces[0])
            done.wait(5)  # holds the connection, reads nothing more

    async def main(port: int) -> int:
        async with client(ssl_context=trusting) as c:
            answer = await c.get(f"https://127.0.0.1:{port}/")
        return answer.status_code

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with thread_server(serve, 1) as port:
            try:
                status = run(main(port))
                gc.collect()
            finally:
                done.set()
    assert status == 200
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []


class _ClosingTransport:
    """A transport between the server's hang-up and the loop reporting it lost."""

    def __init__(self) -> None:
        self.written = b""

    def is_closing(self) -> bool:
        return True

    def write(self, data: bytes) -> None:
        self.written += data


def test_a_closing_connection_writes_nothing_and_says_never_sent() -> None:
    async def main() -> tuple[_ClosingTransport, httpx.TransportError]:
        closing = _ClosingTransport()
        connection = transport._Connection()
        connection.connection_made(closing)  # type: ignore[arg-type]
        with pytest.raises(httpx.ConnectError) as caught:
            connection.exchange(b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", None)
        return closing, caught.value

    closing, caught = asyncio.run(main())
    assert closing.written == b""
    assert outcome_of_error(caught) is Outcome.NOT_SENT


def test_a_408_is_never_followed_on_the_same_connection(run: Run[Any]) -> None:
    """A stale 408 may have crossed a request whose real answer is still coming."""
    timed_out = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n"

    async def main() -> tuple[Wire, list[httpx.Response]]:
        async with Wire(lambda n: Reply((timed_out,)) if n == 1 else ok()) as wire:
            return wire, await get_all(wire, 2)

    wire, answers = run(main())
    assert [a.status_code for a in answers] == [408, 200]
    assert outcome_of_status(408, has_id=False) is Outcome.UNKNOWN
    assert wire.connections == 2


def test_closing_the_client_mid_answer_cuts_it_never_completes_it(run: Run[Any]) -> None:
    async def main() -> BaseException | httpx.Response:
        body_so_far = Reply((b"HTTP/1.1 200 OK\r\n\r\n", b'{"data": {"id": "p'), hold=True)
        async with Wire(lambda n: body_so_far) as wire:
            sender = HttpTransport(max_connections=1)
            request = httpx.Request("GET", wire.url)
            task = asyncio.create_task(sender.handle_async_request(request))
            await wire.until(lambda: wire.requests)
            await asyncio.sleep(0.05)  # the head and part of the body are in
            await sender.aclose()
            return (await asyncio.gather(task, return_exceptions=True))[0]

    outcome = run(main())
    assert isinstance(outcome, httpx.ReadError)


def test_a_connection_made_after_the_client_closed_is_dropped_unused() -> None:
    async def main() -> tuple[Wire, BaseException | httpx.Response]:
        loop = asyncio.get_running_loop()
        real, gate = loop.create_connection, asyncio.Event()

        async def late(*args: Any, **kwargs: Any) -> Any:
            await gate.wait()
            return await real(*args, **kwargs)

        loop.create_connection = late  # type: ignore[method-assign]
        async with Wire(lambda n: ok()) as wire:
            sender = HttpTransport(max_connections=1)
            task = asyncio.create_task(sender.handle_async_request(httpx.Request("GET", wire.url)))
            await asyncio.sleep(0.01)
            await sender.aclose()
            gate.set()
            outcome = (await asyncio.gather(task, return_exceptions=True))[0]
            await wire.until(lambda: wire.connections == 1 and not wire.open_now)
            return wire, outcome

    wire, outcome = asyncio.run(main())  # asyncio's loop: uvloop's methods cannot be replaced
    assert isinstance(outcome, httpx.ConnectError)
    assert outcome_of_error(outcome) is Outcome.NOT_SENT
    assert wire.requests == []
