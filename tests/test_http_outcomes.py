"""httpx's own stack on real sockets: which failures were never sent, which may have been
processed. Each case asserts the httpx exception and the policy's outcome for it."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from batch.api import open_client, unreachable_cause
from batch.policy import Outcome, outcome_of_error
from batch.tls import ssl_context

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Server:
    """A scripted server on 127.0.0.1: `script(server, connection, its number from 1)` runs
    in a thread for each connection."""

    def __init__(self, script: Script, tls: ssl.SSLContext | None = None) -> None:
        self.script, self.tls = script, tls
        self.requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.02)  # to notice `stop` without a blocked accept()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.listener.getsockname()[1]}"
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.stop = threading.Event()

    def __enter__(self) -> Server:
        self.threads[0].start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(5)
        self.listener.close()

    def _accept(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                conn = self.listener.accept()[0]
                thread = threading.Thread(target=self._serve, args=(conn, len(self.threads)))
                self.threads.append(thread)
                thread.start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        conn.settimeout(5)
        with contextlib.suppress(OSError):
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            self.script(self, conn, number)
        conn.close()

    def read(self, conn: socket.socket) -> bytes:
        """One whole request (head and Content-Length body), recorded; b"" if none came."""
        data = b""
        while b"\r\n\r\n" not in data:
            if not (chunk := conn.recv(65536)):
                return b""
            data += chunk
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", data.split(b"\r\n\r\n")[0])
        while len(data.split(b"\r\n\r\n", 1)[1]) < (int(length[1]) if length else 0):
            data += conn.recv(65536)
        self.requests.append(data)
        return data


Script = Callable[[Server, socket.socket, int], None]


def post(
    url: str, *, timeout: float = 2.0, headers: dict[str, str] | None = None
) -> httpx.Response:
    async def main() -> httpx.Response:
        async with open_client(timeout=timeout, concurrency=1) as client:
            return await client.post(url + "/api/external_payments", json={}, headers=headers)

    return asyncio.run(main())


def hang(server: Server, conn: socket.socket, n: int) -> None:
    server.read(conn)
    conn.recv(1)  # until the client gives up and closes


def answer(raw: bytes) -> Script:
    def script(server: Server, conn: socket.socket, n: int) -> None:
        server.read(conn)
        conn.sendall(raw)

    return script


def reset(server: Server, conn: socket.socket, n: int) -> None:
    server.read(conn)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


GZIP = b"HTTP/1.1 201 Created\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!"


@pytest.mark.parametrize(
    ("script", "error"),
    [
        (hang, httpx.ReadTimeout),
        (reset, httpx.ReadError),
        (answer(b""), httpx.RemoteProtocolError),  # closed after reading the request
        (
            answer(b"HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\nonly5"),
            httpx.RemoteProtocolError,
        ),
        (answer(b"SMTP ready\r\n\r\n"), httpx.RemoteProtocolError),
        (answer(GZIP), httpx.DecodingError),
    ],
    ids=["read-timeout", "reset", "closed", "cut-body", "not-http", "bad-gzip"],
)
def test_a_failure_after_the_request_was_written_may_have_been_processed(
    script: Script, error: type[Exception]
) -> None:
    with Server(script) as server, pytest.raises(httpx.RequestError) as caught:
        post(server.url, timeout=0.5)
    assert type(caught.value) is error
    assert outcome_of_error(caught.value) is Outcome.UNKNOWN
    assert len(server.requests) == 1  # the server has it: it may have acted on it


def test_connection_refused_was_never_sent() -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    with pytest.raises(httpx.ConnectError) as caught:
        post(url)
    assert outcome_of_error(caught.value) is Outcome.NOT_SENT
    assert unreachable_cause(caught.value) == "connection refused"


def test_a_connect_timeout_was_never_sent() -> None:
    with socket.create_server(("127.0.0.1", 0), backlog=0) as listener:
        port, queued = listener.getsockname()[1], []
        while True:  # fill the accept queue until the kernel drops new connections' SYNs
            probe = socket.socket()
            probe.settimeout(0.2)
            try:
                probe.connect(("127.0.0.1", port))
            except TimeoutError:
                probe.close()
                break
            queued.append(probe)
        with pytest.raises(httpx.ConnectTimeout) as caught:
            post(f"http://127.0.0.1:{port}", timeout=0.3)
        for probe in queued:
            probe.close()
    assert outcome_of_error(caught.value) is Outcome.NOT_SENT
    assert unreachable_cause(caught.value) == "timeout"


def test_waiting_for_a_pooled_connection_was_never_sent() -> None:
    async def main(url: str) -> Exception:
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(2.0, pool=0.1)) as c:
            first = asyncio.create_task(c.post(url, json={}))
            await asyncio.sleep(0.1)
            with pytest.raises(httpx.PoolTimeout) as caught:
                await c.post(url, json={})
            first.cancel()
            return caught.value

    with Server(hang) as server:
        caught = asyncio.run(main(server.url))
    assert outcome_of_error(caught) is Outcome.NOT_SENT
    assert len(server.requests) == 1


def test_a_dns_failure_was_never_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_name(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)  # no resolver is asked
    with pytest.raises(httpx.ConnectError) as caught:
        post("http://api.paybatch.invalid")
    assert outcome_of_error(caught.value) is Outcome.NOT_SENT
    assert unreachable_cause(caught.value) == "DNS"


def test_a_header_with_a_line_break_is_never_sent() -> None:
    with Server(answer(OK)) as server, pytest.raises(httpx.LocalProtocolError) as caught:
        post(server.url, headers={"X-Ref": "a\r\nX-Evil: 1"})
    assert outcome_of_error(caught.value) is Outcome.PERMANENT
    assert server.requests == []


def test_bytes_waiting_on_an_idle_connection_are_nobodys_answer() -> None:
    """A late 408 lands while the loop is busy: the next request must not take it."""
    late = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

    def script(server: Server, conn: socket.socket, n: int) -> None:
        server.read(conn)
        conn.sendall(OK + (late if n == 1 else b""))

    async def main(url: str) -> httpx.Response:
        async with open_client(timeout=2.0, concurrency=1) as client:
            await client.post(url, json={"n": 1})
            time.sleep(0.2)  # noqa: ASYNC251 - the loop is busy while the 408 and FIN arrive
            return await client.post(url, json={"n": 2})

    with Server(script) as server:
        second = asyncio.run(main(server.url))
    assert second.status_code == 200
    assert len(server.requests) == 2  # the second request really went, on a new connection


# TLS: the operator's bundle when SSL_CERT_FILE/SSL_CERT_DIR say so, else the OS trust store.


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[Server]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with Server(answer(OK), tls=context) as server:
        yield server


@pytest.fixture
def no_cert_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


@pytest.mark.usefixtures("no_cert_env")
def test_an_untrusted_server_is_never_sent_anything(tls_server: Server) -> None:
    with pytest.raises(httpx.ConnectError) as caught:
        post(tls_server.url)
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert outcome_of_error(caught.value) is Outcome.NOT_SENT
    assert unreachable_cause(caught.value) == "TLS"
    assert tls_server.requests == []


def ca_env(ca: trustme.CA, folder: Path, variable: str) -> dict[str, str]:
    """SSL_CERT_FILE naming the CA's file, or SSL_CERT_DIR a folder OpenSSL can search."""
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    if variable == "SSL_CERT_FILE":
        return {variable: str(folder / "ca.pem")}
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to name the CA by its subject hash")
    command = ["openssl", "x509", "-hash", "-noout", "-in", str(folder / "ca.pem")]
    hashed = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    (folder / "ca.pem").rename(folder / f"{hashed}.0")
    return {variable: str(folder)}


@pytest.mark.usefixtures("no_cert_env")  # else OpenSSL itself reads them on Linux
@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "SSL_CERT_DIR"])
def test_the_cert_variables_name_the_cas_to_trust(
    tls_server: Server, ca: trustme.CA, tmp_path: Path, variable: str
) -> None:
    async def main(verify: ssl.SSLContext) -> str:
        async with httpx.AsyncClient(verify=verify) as client:
            return (await client.get(tls_server.url)).text

    assert asyncio.run(main(ssl_context(ca_env(ca, tmp_path, variable)))) == "ok"


def test_without_cert_variables_the_os_trust_store_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    import truststore

    assert isinstance(ssl_context({}), truststore.SSLContext)
    monkeypatch.setitem(sys.modules, "truststore", None)  # cannot be imported
    fallback = ssl_context({})
    assert not isinstance(fallback, truststore.SSLContext)
    assert fallback.verify_mode is ssl.CERT_REQUIRED
    assert fallback.check_hostname
    assert fallback.get_ca_certs()  # certifi's bundle
