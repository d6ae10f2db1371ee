"""Helpers for the web page's tests: a page server pointed at a sandbox, and messy inputs."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import openpyxl
from e2e import token_for

from batch.config import ApiConfig
from batch.sandbox import SandboxServer
from batch.web import Site, WebServer

ZERO_WIDTH_SPACE = "\u200b"


def start_page(
    sandbox: SandboxServer | None,
    *,
    home: Path,
    reports: Path,
    max_upload: int = 50 * 1024 * 1024,
) -> WebServer:
    """A started page server; `sandbox=None`: no credentials, as without CL_* variables."""
    config = ApiConfig.from_env(sandbox.env()) if sandbox is not None else None
    site = Site(
        api_config=config,
        credentials_problem="" if config else "missing environment variable(s): CL_BASE_URL",
        state_dir=home,
        reports_dir=reports,
        max_upload=max_upload,
    )
    server = WebServer(site)
    server.start()
    return server


def messy_xlsx(path: Path, orders: Sequence[str]) -> Path:
    """A workbook as finance sends it: a title row above the header, one token with a
    zero-width space in it, and the first order repeated at the end."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Payments"
    sheet.append(["November settlements - ACME"])
    sheet.append(["Order ID", "Payment Source Token", "Reference"])
    for n, order in enumerate(orders):
        token = token_for(order)
        if n == 1:
            token = token[:5] + ZERO_WIDTH_SPACE + token[5:]
        sheet.append([order, token, f"INV-{n:04d}"])
    sheet.append([orders[0], token_for(orders[0]), "INV-again"])
    book.save(path)
    return path


def two_sheet_xlsx(path: Path, orders: Sequence[str]) -> Path:
    """Two sheets that both qualify: the page must ask which one to read."""
    book = openpyxl.Workbook()
    first = book.active
    assert first is not None
    first.title = "October"
    second = book.create_sheet("November")
    for sheet in (first, second):
        sheet.append(["order_id", "payment_source_token"])
        for order in orders:
            sheet.append([order, token_for(order)])
    book.save(path)
    return path


def odd_headers_csv(path: Path, orders: Sequence[str]) -> Path:
    """Headers paybatch does not recognise: the page must offer the column mapping."""
    lines = ["Order Ref,Token"] + [f"{o},{token_for(o)}" for o in orders]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@contextlib.contextmanager
def session(server: WebServer) -> Iterator[httpx.Client]:
    """A client that opened the printed address once, so it holds the access cookie."""
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30.0) as http:
        welcome = http.get(f"/?token={server.site.guard.access_token}")
        assert welcome.status_code == 303, welcome.text
        yield http


def csrf_of(http: httpx.Client) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', http.get("/").text)
    assert found is not None
    return found[1]


def upload_csv(http: httpx.Client, name: str, body: bytes) -> httpx.Response:
    """Upload a file as the page's form does; the answer is the check page."""
    return http.post(
        "/upload",
        data={"csrf": csrf_of(http)},
        files={"file": (name, body, "text/csv")},
        follow_redirects=True,
    )


def orders_body(orders: Sequence[str]) -> bytes:
    lines = ["order_id,payment_source_token"] + [f"{o},{token_for(o)}" for o in orders]
    return ("\n".join(lines) + "\n").encode()


def wait_for_the_run(http: httpx.Client, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status: dict[str, Any] = http.get("/status").json()
        if not status["running"]:
            return status
        time.sleep(0.05)
    raise AssertionError("the run did not finish")
