"""An httpx transport: keep-alive HTTP/1.1 connections on asyncio, answers parsed by httptools.

The client's one event-loop thread is what limits a batch against a fast server, and the
HTTP engine under `httpx.AsyncClient` took most of it: httpcore's pool bookkeeping grows
with the number of connections, and aiohttp's client (request objects, tracing, cookie and
redirect machinery) was about a third of the thread for 5,000 POSTs. paybatch needs none of
that: one origin, small JSON bodies, one request per connection at a time. So the bytes go
out as one write, and the answer is parsed by llhttp (httptools, uvicorn's parser).

What matters for exactly-once is how failures are reported, so that the outcome policy can
tell "never sent" from "maybe processed":

    where it failed                                   httpx error            meaning
    ------------------------------------------------  ---------------------  ---------------
    waiting for a free connection (pool timeout)      PoolTimeout            never sent
    resolving, connecting, TLS handshake              ConnectError           never sent
    ... or taking longer than the connect timeout     ConnectTimeout         never sent
    a header with CR or LF in it                      LocalProtocolError     never sent
    a HEAD request (the parser would wait for a body) UnsupportedProtocol    never sent
    the connection was closing before the write       ConnectError           never sent
    no whole answer within the read timeout           ReadTimeout            may have been
    closed or reset before the whole answer           ReadError                processed
    an answer that is not HTTP/1.1, or a 101          RemoteProtocolError

Nothing here ever resends: a request leaves at most once per call. Bodies are small and
leave in one buffered write, so httpx's write timeout has nothing to time; the read
timeout runs from that write to the whole answer. A connection is reused only after a
whole keep-alive answer, not once it has been idle for `KEEPALIVE_EXPIRY` (or the
server's `Keep-Alive: timeout`, less a second), and not while bytes nobody asked for wait
on it; so a server's idle timeout rarely turns a request into an unknown, and a stray
answer that has arrived is not taken for the next request's. (Over TLS, part of a record
can wait inside the TLS layer where that check cannot see it. The one answer servers send
unasked is a 408; a connection is never reused after one, and the policy reads a 408 as
an unknown outcome.) Chunked trailers are dropped.
"""

from __future__ import annotations

import asyncio
import select
import ssl
from typing import Any, cast

import certifi
import httptools
import httpx

KEEPALIVE_EXPIRY = 5.0  # seconds; httpx's own default
ABORT_WAIT = 1.0  # seconds aclose() waits for the loop to report aborted connections gone
_SCHEMES = {b"http": 80, b"https": 443}
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})
_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})

Origin = tuple[bytes, str, int]


def _head(request: httpx.Request, body: bytes) -> bytes:
    """The request line and headers, with our own framing: the body is sent whole."""
    lines = [request.method.encode("ascii") + b" " + request.url.raw_path + b" HTTP/1.1"]
    for name, value in request.headers.raw:
        if b"\r" in value or b"\n" in value or b"\r" in name or b"\n" in name:
            raise httpx.LocalProtocolError(f"the {name!r} header has a line break in it")
        if name.lower() not in _FRAMING:
            lines.append(name + b": " + value)
    if body or request.method.encode("ascii") in _BODY_METHODS:
        lines.append(b"Content-Length: " + str(len(body)).encode("ascii"))
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


class _Answer:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, one request at a time; also httptools' callback target."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._answer: asyncio.Future[_Answer] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._headers_done = False
        self._keep_alive = False
        self._aborted = False
        self._server_expiry = KEEPALIVE_EXPIRY
        self.idle_since = 0.0
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def reusable(self) -> bool:
        """Open, and its last answer was whole and kept the connection alive."""
        transport = self._transport
        return self._keep_alive and transport is not None and not transport.is_closing()

    def usable(self, now: float) -> bool:
        """Reusable, not idle for so long that the server may have dropped it, and quiet.

        Bytes (or an EOF) waiting on an idle connection are nobody's answer: a late 408, a
        close. The loop may not have read them yet, and the next request would take them
        for its own. So the socket itself is asked, as httpcore does.
        """
        expiry = min(KEEPALIVE_EXPIRY, self._server_expiry)
        return (
            self.reusable()
            and now - self.idle_since < expiry
            and not _has_bytes_waiting(cast(asyncio.Transport, self._transport))
        )

    def close(self) -> None:
        self._keep_alive = False
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Drop the connection at once; an answer still coming is then cut, never whole."""
        self._keep_alive = False
        self._aborted = True
        if self._transport is not None:
            self._transport.abort()

    def exchange(self, data: bytes, read_timeout: float | None) -> asyncio.Future[_Answer]:
        """Send one whole request; the future is the whole answer (or an httpx error)."""
        transport = self._transport
        if transport is None or transport.is_closing():  # a write now would be dropped
            raise httpx.ConnectError("the connection closed before the request was written")
        loop = asyncio.get_running_loop()
        self._answer = answer = loop.create_future()
        self._keep_alive = False
        self._status, self._headers, self._body, self._headers_done = 0, [], [], False
        transport.write(data)
        if read_timeout is not None:
            self._timer = loop.call_later(read_timeout, self._timed_out, read_timeout)
        return answer

    def _settle(self, result: _Answer | httpx.TransportError) -> None:
        answer, self._answer = self._answer, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if answer is None or answer.done():
            return
        if isinstance(result, _Answer):
            answer.set_result(result)
        else:
            answer.set_exception(result)

    def _timed_out(self, seconds: float) -> None:
        self._timer = None
        self.close()
        self._settle(httpx.ReadTimeout(f"no whole answer within {seconds:g} s"))

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self._answer is None:  # bytes nobody asked for: the connection is not sane
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.close()
            self._settle(httpx.RemoteProtocolError("the server switched protocols"))
        except httptools.HttpParserError as exc:
            self.close()
            self._settle(httpx.RemoteProtocolError(f"not an HTTP/1.1 answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._keep_alive = False
        if not self.lost.done():
            self.lost.set_result(None)
        if self._answer is None:
            return
        if exc is None and not self._aborted and self._headers_done and self._until_close():
            # A TLS close without close_notify also lands here; a cut JSON body then fails
            # to parse, which the API layer treats as an unknown outcome, never a success.
            self._settle(_Answer(self._status, self._headers, b"".join(self._body)))
            return
        why = f": {type(exc).__name__}: {exc}" if exc is not None else ""
        self._settle(httpx.ReadError(f"the server closed the connection before answering{why}"))

    def _until_close(self) -> bool:
        """Whether the body is framed by the end of the connection (no length, not chunked)."""
        names = {name.lower() for name, _ in self._headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if self._headers_done:  # a chunked trailer: never let it stand in for a header
            return
        self._headers.append((name, value))
        if name.lower() == b"keep-alive":
            self._server_expiry = _keep_alive_timeout(value)

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_begin(self) -> None:
        if self._answer is None:  # an answer nobody asked for: the connection is not sane
            self.close()

    def on_message_complete(self) -> None:
        if self._answer is None:
            return
        if self._status < 200:  # an interim answer (100 Continue): the real one follows
            self._headers, self._body, self._headers_done = [], [], False
            return
        # A 408 may be a stale "idle too long" that crossed our request; if the server kept
        # the connection, our real answer would follow and go to the next request.
        self._keep_alive = self._parser.should_keep_alive() and self._status != 408
        self.idle_since = asyncio.get_running_loop().time()
        self._settle(_Answer(self._status, self._headers, b"".join(self._body)))


def _keep_alive_timeout(value: bytes) -> float:
    """How long the server keeps an idle connection (`Keep-Alive: timeout=5`), less a second."""
    for part in value.split(b","):
        key, _, number = part.strip().partition(b"=")
        if key.lower() == b"timeout":
            try:
                return max(0.0, float(number) - 1.0)
            except ValueError:
                break
    return KEEPALIVE_EXPIRY


def _has_bytes_waiting(transport: asyncio.Transport) -> bool:
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    fd = sock.fileno()
    if fd < 0:
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([fd], [], [], 0)  # Windows: no poll()
    return bool(readable)


class HttpTransport(httpx.AsyncBaseTransport):
    """At most `max_connections` connections per transport, reused most-recent first."""

    def __init__(self, *, max_connections: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._ssl_context = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.raw_scheme not in _SCHEMES:
            raise httpx.UnsupportedProtocol(f"paybatch speaks http and https, not {url.scheme!r}")
        if request.method == "HEAD":  # the parser cannot be told that no body follows
            raise httpx.UnsupportedProtocol("paybatch's transport does not send HEAD")
        origin = (url.raw_scheme, url.host, url.port or _SCHEMES[url.raw_scheme])
        timeout: dict[str, Any] = request.extensions.get("timeout", {})
        body = await request.aread()
        data = _head(request, body) + body
        await self._acquire(timeout.get("pool"))
        try:
            connection = await self._connection(origin, timeout.get("connect"))
            try:
                answer = await connection.exchange(data, timeout.get("read"))
            except BaseException:
                self._forget(connection)
                raise
            if connection.reusable() and not self._closed:
                self._idle.setdefault(origin, []).append(connection)
            else:
                self._forget(connection)
        finally:
            self._slots.release()
        return httpx.Response(
            answer.status,
            headers=answer.headers,
            content=answer.body,
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def _acquire(self, seconds: float | None) -> None:
        if seconds is None:
            await self._slots.acquire()
            return
        try:
            async with asyncio.timeout(seconds):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise httpx.PoolTimeout(f"no free connection within {seconds:g} s") from exc

    async def _connection(self, origin: Origin, seconds: float | None) -> _Connection:
        idle = self._idle.get(origin)
        now = asyncio.get_running_loop().time()
        while idle:
            connection = idle.pop()
            if connection.usable(now):
                return connection
            self._forget(connection)
        return await self._connect(origin, seconds)

    async def _connect(self, origin: Origin, seconds: float | None) -> _Connection:
        scheme, host, port = origin
        secure = scheme == b"https"
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(seconds):
                _, connection = await loop.create_connection(
                    _Connection,
                    host,
                    port,
                    ssl=self._tls() if secure else None,
                    server_hostname=host if secure else None,
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"could not connect to {host}:{port} in time") from exc
        except OSError as exc:  # refused, unreachable, unknown host, TLS handshake (SSLError)
            raise httpx.ConnectError(f"could not connect to {host}:{port}: {exc}") from exc
        if self._closed:  # aclose() ran while this one was connecting
            connection.abort()
            raise httpx.ConnectError("the client closed while connecting")
        self._open.add(connection)
        connection.lost.add_done_callback(lambda _: self._open.discard(connection))
        return connection

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context(cafile=certifi.where())
        return self._ssl_context

    def _forget(self, connection: _Connection) -> None:
        connection.close()  # it leaves `_open` once the loop reports it lost

    async def aclose(self) -> None:
        """Drop every connection now, without TLS goodbyes, and wait until they are gone."""
        self._closed = True
        self._idle.clear()
        lost = [c.lost for c in self._open]
        for connection in list(self._open):
            connection.abort()
        if lost:
            await asyncio.wait(lost, timeout=ABORT_WAIT)
