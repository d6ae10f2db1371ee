"""The page's locks, over plain HTTP: access token, Host, Origin, CSRF, upload size."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from webpage import start_page

from batch.web import WebServer

LIMIT = 64 * 1024  # a small cap keeps the oversized upload quick


@pytest.fixture
def page(tmp_path: Path) -> Iterator[WebServer]:
    server = start_page(
        None, home=tmp_path / "home", reports=tmp_path / "reports", max_upload=LIMIT
    )
    yield server
    server.stop()


def base(server: WebServer) -> str:
    return f"http://127.0.0.1:{server.port}"


@pytest.fixture
def client(page: WebServer) -> Iterator[httpx.Client]:
    """A client that used the printed address once, so it holds the cookie."""
    with httpx.Client(base_url=base(page)) as http:
        welcome = http.get(f"/?token={page.site.guard.access_token}")
        assert welcome.status_code == 303
        assert welcome.headers["location"] == "/"
        cookie = welcome.headers["set-cookie"]
        assert cookie.startswith(f"paybatch_access_{page.port}=")
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert http.get("/").status_code == 200
        yield http


def csrf_of(client: httpx.Client) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text)
    assert found is not None
    return found[1]


def test_no_token_is_refused(page: WebServer) -> None:
    for path in ("/", "/status", "/run", "/download/x/csv"):
        answer = httpx.get(base(page) + path)
        assert answer.status_code == 403, path
    wrong = httpx.get(base(page) + "/?token=not-the-token")
    assert wrong.status_code == 403
    assert "set-cookie" not in wrong.headers


def test_the_token_opens_the_page(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "Check a spreadsheet" in page.text
    assert "environment: unknown until checked" in page.text


def test_a_foreign_host_is_refused_even_with_the_token(
    page: WebServer, client: httpx.Client
) -> None:
    # DNS rebinding: evil.example resolves to 127.0.0.1, the browser sends its own Host.
    for host in ("evil.example", f"evil.example:{page.port}", "127.0.0.1", "localhost:1"):
        answer = client.get("/", headers={"Host": host})
        assert answer.status_code == 403, host
    assert client.get("/", headers={"Host": f"localhost:{page.port}"}).status_code == 200


def test_a_cross_site_post_is_refused(client: httpx.Client) -> None:
    csrf = csrf_of(client)
    foreign = client.post("/stop", data={"csrf": csrf}, headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403
    no_csrf = client.post("/stop", data={})
    assert no_csrf.status_code == 403
    wrong = client.post("/stop", data={"csrf": "guess"})
    assert wrong.status_code == 403
    upload = client.post(
        "/upload", data={"csrf": "guess"}, files={"file": ("a.csv", b"order_id\n", "text/csv")}
    )
    assert upload.status_code == 403
    own = client.post("/stop", data={"csrf": csrf}, headers={"Origin": str(client.base_url)})
    assert own.status_code == 303


def test_an_oversized_upload_is_413_with_a_message(client: httpx.Client) -> None:
    body = b"order_id,payment_source_token\n" + b"ORD1,tok_abc\n" * (LIMIT // 10)
    answer = client.post(
        "/upload", data={"csrf": csrf_of(client)}, files={"file": ("big.csv", body, "text/csv")}
    )
    assert answer.status_code == 413
    assert "larger than the upload limit of 0.0625 MB" in answer.text


def test_a_small_upload_is_checked_offline(client: httpx.Client) -> None:
    body = b"order_id,payment_source_token\nORD00001,tok_ord00001_0001\n,tok_x\n"
    answer = client.post(
        "/upload",
        data={"csrf": csrf_of(client)},
        files={"file": ("../../etc/orders.csv", body, "text/csv")},
        follow_redirects=True,
    )
    assert answer.status_code == 200
    assert "orders.csv" in answer.text
    assert "Checked offline only" in answer.text
    assert "blank" in answer.text.lower()
