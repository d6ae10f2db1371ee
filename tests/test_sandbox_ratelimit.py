"""The sandbox's rate-limit modes over real HTTP: refused requests counted, no Retry-After,
foreign traffic on the same key, no X-Ratelimit-* headers."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from sandbox_client import Api

from batch.sandbox import Limit, SandboxServer
from batch.sandbox.limits import SlidingWindows

SandboxFactory = Callable[..., SandboxServer]
RATELIMIT_HEADERS = ("X-Ratelimit-Limit", "X-Ratelimit-Interval", "X-Ratelimit-Remaining")


def _sleep_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.monotonic()))


@pytest.mark.parametrize("count_rejected", [False, True])
def test_refused_requests_count_only_when_configured(
    sandbox_factory: SandboxFactory, count_rejected: bool
) -> None:
    server = sandbox_factory(
        open_orders=True, limits=(Limit(1, 1.6, "class"),), count_rejected=count_rejected
    )
    with httpx.Client(base_url=server.base_url) as c:
        api = Api(server, c)
        started = time.monotonic()
        assert api.get("/api/orders/ORDER00001").status_code == 200
        _sleep_until(started + 0.8)
        assert api.get("/api/orders/ORDER00001").status_code == 429
        # The accepted request has left the window; only a counted refusal is still in it.
        _sleep_until(started + 2.0)
        third = api.get("/api/orders/ORDER00001")
    assert third.status_code == (429 if count_rejected else 200)
    api_log = [r for r in server.request_log() if r.path.startswith("/api/")]
    assert [r.accepted for r in api_log] == [True, False, not count_rejected]


def test_counted_refusals_keep_a_knocking_client_out() -> None:
    windows = SlidingWindows([Limit(2, 10.0, "class")], count_rejected=True)
    assert [windows.check("GET /a", t).accepted for t in (0.0, 1.0, 2.0, 3.0)] == [
        True,
        True,
        False,
        False,
    ]
    # Without counting, t=10 would be free (see test_windows_count_only_accepted_requests);
    # the refusals at 2 and 3 hold the window until 12 and 13.
    assert not windows.check("GET /a", 10.0).accepted
    assert not windows.check("GET /a", 11.5).accepted  # and this one is counted too
    assert windows.check("GET /a", 21.5).accepted


def test_no_retry_after_keeps_the_ratelimit_headers(sandbox_factory: SandboxFactory) -> None:
    server = sandbox_factory(
        open_orders=True, limits=(Limit(1, 60.0, "class"),), token_limit=None, retry_after=False
    )
    with httpx.Client(base_url=server.base_url) as c:
        api = Api(server, c)
        assert api.create("ORDER00001").status_code == 201
        refused = api.create("ORDER00002")
    assert refused.status_code == 429
    assert "Retry-After" not in refused.headers
    assert refused.headers["X-Ratelimit-Remaining"] == "0"


def test_no_ratelimit_headers(sandbox_factory: SandboxFactory) -> None:
    server = sandbox_factory(
        open_orders=True, limits=(Limit(1, 60.0, "class"),), ratelimit_headers=False
    )
    with httpx.Client(base_url=server.base_url) as c:
        api = Api(server, c)
        answers = [api.create("ORDER00001"), api.create("ORDER00002")]
    assert [a.status_code for a in answers] == [201, 429]
    for answer in answers:
        assert not [h for h in RATELIMIT_HEADERS if h in answer.headers]
    assert answers[1].headers["Retry-After"] == "60"


def test_foreign_traffic_spends_the_class_window(sandbox_factory: SandboxFactory) -> None:
    server = sandbox_factory(
        open_orders=True, limits=(Limit(20, 2.0, "class"),), foreign_rate=(5, 1.0)
    )
    with httpx.Client(base_url=server.base_url) as c:
        api = Api(server, c)
        time.sleep(1.1)
        answer = api.get("/api/orders/ORDER00001")
    assert answer.status_code == 200
    foreign = server.store.foreign()
    # 5/s from the start: at least 6 foreign requests by 1.1 s (one at 0), all accepted.
    assert foreign["accepted"] >= 6
    assert foreign["refused"] == 0
    # Remaining counts them (read after the answer, the foreign count may have grown).
    remaining = int(answer.headers["X-Ratelimit-Remaining"])
    assert 20 - 1 - foreign["accepted"] <= remaining <= 20 - 1 - 6
    # Foreign requests are not in the request log: it holds what clients sent.
    assert [r.path for r in server.request_log() if r.path.startswith("/api/")] == [
        "/api/orders/ORDER00001"
    ]


def test_foreign_traffic_fills_the_window_and_spares_the_endpoint_windows(
    sandbox_factory: SandboxFactory,
) -> None:
    server = sandbox_factory(
        open_orders=True,
        limits=(Limit(6, 60.0, "class"), Limit(1, 60.0, "endpoint")),
        foreign_rate=(40, 1.0),
    )
    with httpx.Client(base_url=server.base_url) as c:
        api = Api(server, c)
        time.sleep(0.4)
        refused = api.get("/api/orders/ORDER00001")
    assert refused.status_code == 429  # the foreign requests took all six places
    assert 50 <= int(refused.headers["Retry-After"]) <= 60
    foreign = server.store.foreign()
    assert foreign["accepted"] == 6
    assert foreign["refused"] >= 6
    # The endpoint window never saw them: one request per endpoint still fits there.
    windows = server.sandbox.limits
    assert windows is not None
    assert windows.check("GET /api/orders/{id}", time.monotonic() + 61).accepted


def test_foreign_refusals_count_when_refusals_do(sandbox_factory: SandboxFactory) -> None:
    server = sandbox_factory(
        open_orders=True,
        limits=(Limit(4, 0.5, "class"),),
        foreign_rate=(40, 1.0),
        count_rejected=True,
    )
    time.sleep(1.0)
    with httpx.Client(base_url=server.base_url) as c:
        api = Api(server, c)
        answer = api.get("/api/orders/ORDER00001")
    # 40/s against 4 per 0.5 s: counted refusals keep the window full for good (uncounted,
    # it would take 4 more every 0.5 s: 9 or more by now).
    assert answer.status_code == 429
    foreign = server.store.foreign()
    assert 4 <= foreign["accepted"] < 8
    assert foreign["refused"] >= 30


def test_foreign_counts_in_the_control_route(sandbox_factory: SandboxFactory) -> None:
    server = sandbox_factory(open_orders=True, limits=(Limit(100, 60.0),), foreign_rate=(20, 1.0))
    time.sleep(0.3)
    summary = httpx.get(server.base_url + "/_sandbox/requests", params={"summary": "1"}).json()
    assert summary["foreign"]["accepted"] >= 5
    assert summary["foreign"]["refused"] == 0


def test_counted_refusals_on_the_token_endpoint(sandbox_factory: SandboxFactory) -> None:
    server = sandbox_factory(limits=None, token_limit=Limit(1, 1.0), count_rejected=True)
    body = {
        "grant_type": "client_credentials",
        "client_id": server.client_id,
        "client_secret": server.client_secret,
    }
    with httpx.Client(base_url=server.base_url) as c:
        started = time.monotonic()
        assert c.post("/oauth/token", json=body).status_code == 200
        _sleep_until(started + 0.5)
        assert c.post("/oauth/token", json=body).status_code == 429
        _sleep_until(started + 1.1)  # the grant has left the window, the refusal has not
        assert c.post("/oauth/token", json=body).status_code == 429
