"""An httpx transport on aiohttp's connection pool: httpx's API, a faster HTTP/1.1 engine.

httpcore's pool bookkeeping grows with the number of connections and dominated the
client's CPU (a profile of 3,000 POSTs at 64 connections: 24 of 27 s inside httpx/httpcore).
The runner and the tests still talk to an `httpx.AsyncClient`; only the bytes on the wire
go through aiohttp.

What matters for exactly-once is how failures are reported. aiohttp's errors are mapped
to httpx's so that the outcome policy can tell "never sent" from "maybe processed":

    aiohttp                                  httpx                 meaning
    ---------------------------------------  --------------------  -------------------------
    ClientConnectorError (connect failed)    ConnectError          never sent
    ConnectionTimeoutError (connect/pool)    ConnectTimeout        never sent
    SocketTimeoutError, other timeouts       ReadTimeout           may have been processed
    ServerDisconnectedError                  RemoteProtocolError   may have been processed
    any other ClientError / OSError          ReadError             may have been processed

aiohttp never retries a request on its own, so a POST leaves at most once per call.
"""

from __future__ import annotations

import asyncio
import functools

import aiohttp
import httpx
from yarl import URL

# Hop-by-hop and framing headers aiohttp sets itself from the body it sends.
_SKIP_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"connection"})


def _mapped(error: BaseException, request: httpx.Request) -> httpx.TransportError:
    """The httpx error that says the same about whether the request left."""
    text = f"{type(error).__name__}: {error}"
    if isinstance(error, aiohttp.ClientConnectorError):
        return httpx.ConnectError(text, request=request)
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(text, request=request)
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return httpx.ReadTimeout(text, request=request)
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(text, request=request)
    return httpx.ReadError(text, request=request)


@functools.lru_cache(maxsize=16)
def _client_timeout(connect: float | None, read: float | None) -> aiohttp.ClientTimeout:
    # aiohttp's `connect` also covers waiting for a pooled connection: still "never sent".
    return aiohttp.ClientTimeout(total=None, connect=connect, sock_connect=connect, sock_read=read)


def _timeout(request: httpx.Request) -> aiohttp.ClientTimeout:
    """httpx's per-request timeouts (the client's `timeout=`), as aiohttp's."""
    given = request.extensions.get("timeout", {})
    return _client_timeout(given.get("connect"), given.get("read"))


@functools.lru_cache(maxsize=64)
def _yarl(url: str) -> URL:
    """The same few URLs are sent thousands of times: parse each once."""
    return URL(url, encoded=True)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Send httpx requests through one aiohttp ClientSession (created on first use)."""

    def __init__(self, *, max_connections: int) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                auto_decompress=False,  # httpx decodes by Content-Encoding itself
                trust_env=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._open()
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in request.headers.raw
            if k.lower() not in _SKIP_HEADERS
        ]
        body = await request.aread()
        try:
            async with session.request(
                request.method,
                _yarl(str(request.url)),
                headers=headers,
                data=body or None,
                timeout=_timeout(request),
                allow_redirects=False,
                compress=None,
            ) as answer:
                content = await answer.read()
                raw_headers = list(answer.raw_headers)
                status = answer.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _mapped(exc, request) from exc
        return httpx.Response(
            status, headers=raw_headers, content=content, request=request, extensions={}
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
