"""paybatch through an HTTP proxy on 127.0.0.1: HTTP_PROXY for http://, CONNECT for https://."""

from __future__ import annotations

import asyncio
import http.client
import select
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import trustme
from click.testing import CliRunner
from e2e import orders_csv, out_args, read_report

from batch.api import open_client
from batch.cli import main
from batch.sandbox import SandboxServer


class _Proxy(BaseHTTPRequestHandler):
    """A forward proxy: absolute-URI requests are relayed, CONNECT opens a tunnel."""

    protocol_version = "HTTP/1.1"
    seen: list[str]  # "METHOD target" of every request, set on the class by `proxy()`

    def do_CONNECT(self) -> None:
        self.seen.append(f"CONNECT {self.path}")
        host, port = self.path.rsplit(":", 1)
        with socket.create_connection((host, int(port))) as upstream:
            self.send_response(200)
            self.end_headers()
            ends = [self.connection, upstream]
            while _relay(ends):
                pass
        self.close_connection = True

    def _forward(self) -> None:
        self.seen.append(f"{self.command} {self.path}")
        target = urlsplit(self.path)
        assert target.scheme == "http", "a forward proxy gets absolute URIs"
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-connection"}
        upstream = http.client.HTTPConnection(target.netloc, timeout=10)
        path = target.path + (f"?{target.query}" if target.query else "")
        upstream.request(self.command, path, body=body or None, headers=headers)
        answer = upstream.getresponse()
        content = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "content-length", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)
        upstream.close()

    do_GET = do_POST = _forward

    def log_message(self, format: str, *args: object) -> None:
        pass


def _relay(ends: list[socket.socket]) -> bytes:
    """Move one chunk between the two ends of a tunnel; b"" once either side closes."""
    readable, _, _ = select.select(ends, [], [], 5)
    for end in readable:
        chunk = end.recv(65536)
        if not chunk:
            return b""
        (ends[1] if end is ends[0] else ends[0]).sendall(chunk)
        return chunk
    return b""


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A proxy on 127.0.0.1 that HTTP_PROXY and HTTPS_PROXY name; yields what it saw."""
    seen: list[str] = []
    handler = type("Proxy", (_Proxy,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("HTTP_PROXY", url)
    monkeypatch.setenv("HTTPS_PROXY", url)
    # httpx sends loopback through the proxy too unless NO_PROXY names it: say it does not.
    monkeypatch.setenv("NO_PROXY", "")
    yield seen
    server.shutdown()
    server.server_close()


def test_a_run_reaches_the_sandbox_through_the_proxy(
    proxy: list[str], sandbox: SandboxServer, tmp_path: Path
) -> None:
    ids = ["PX1", "PX2", "PX3"]
    args = out_args(tmp_path, orders_csv(tmp_path, ids))
    result = CliRunner().invoke(main, args, env=sandbox.env())
    assert result.exit_code == 0, result.output
    assert f"POST {sandbox.auth_url}" in proxy
    assert proxy.count(f"POST {sandbox.base_url}/api/external_payments") == 3
    assert sorted(sandbox.payments_by_order()) == ids
    assert {line["status"] for line in read_report(tmp_path / "out" / "report.csv")} == {"created"}


def test_https_goes_through_a_connect_tunnel(
    proxy: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = trustme.CA()
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_side)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with server_side.wrap_socket(conn, server_side=True) as tls:
            tls.recv(65536)
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecret")

    async def fetch() -> str:
        async with open_client(timeout=5.0, concurrency=1) as client:
            return (await client.get(f"https://127.0.0.1:{port}/api/orders")).text

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with listener:
        assert asyncio.run(fetch()) == "secret"
        thread.join(5)
    assert proxy == [f"CONNECT 127.0.0.1:{port}"]
