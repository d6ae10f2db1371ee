"""End to end under every injected fault: exactly one payment per valid row, report = server.

The real CLI (in-process, through CliRunner) runs against the real sandbox on 127.0.0.1
with 500/503 HTML answers, connections dropped before and after the write, answers held
past the client's timeout, a two-second token lifetime and 429 storms. It is rerun, as
an operator would, until every valid row is done; the figures are printed (see `-s`).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import cast

import httpx
from click.testing import CliRunner
from conftest import SandboxFactory
from e2e import DONE, audit, order_ids, post_count, read_report, run_args, write_orders

from batch.auth import BearerAuth, TokenProvider
from batch.cli import main
from batch.config import ApiConfig, RunOptions
from batch.runner import RunResult, run_payments
from batch.sandbox import SandboxConfig, SandboxServer
from batch.sandbox.config import Faults

ROWS = 200
# The in-process sandbox shares the GIL with the CLI: on a loaded machine a write can lag its
# request, so look a lost answer up 1.5 s later, not the 0.5 s of e2e.FAST.
SETTLE = ("--settle-delay", "1.5")
MAX_RUNS = 6

FAULTS = Faults(
    p_5xx=0.08,
    p_drop_before=0.05,
    p_drop_after=0.15,
    p_late=0.08,
    late_seconds=1.5,  # past the client's 1 s timeout: the payment exists, the answer is lost
    # 429s with Retry-After 1. Storms have their own seeded stream: with this test's seed
    # the 14th, 94th and 128th of the first 200 create requests are stormed, in any order.
    storm_p=0.02,
    latency_ms=(0.0, 20.0),
)


def test_faults_end_with_exactly_one_payment_per_row(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    server = sandbox_factory(
        SandboxConfig(
            open_orders=True,
            limits=None,
            token_limit=None,
            token_ttl=2.0,
            faults=FAULTS,
            seed=20240611,
        )
    )
    orders = order_ids(ROWS)
    refused = [
        (orders[10], "tok_second_row_for_same_order_zzzz"),  # duplicate: never sent
        ("ORD90001", ""),  # invalid: blank token
        ("ORD90002", "4111 1111 1111 1111"),  # invalid: a card number
    ]
    source = write_orders(tmp_path / "orders.csv", orders, refused=refused)
    state = tmp_path / "state.sqlite"
    runner = CliRunner()

    runs, statuses, summaries = 0, Counter[str](), []
    while runs < MAX_RUNS:
        runs += 1
        report = tmp_path / f"report-{runs}.csv"
        summary = tmp_path / f"summary-{runs}.json"
        args = run_args(source.path, state, report, "--summary-json", str(summary), *SETTLE)
        result = runner.invoke(main, args, env=server.env(), catch_exceptions=False)
        assert result.exit_code == 1, result.output  # the refused rows keep it from 0
        lines = read_report(report)
        summaries.append(json.loads(summary.read_text()))
        statuses = Counter(line["status"] for line in lines)
        if statuses["created"] + statuses["already_created"] == ROWS:
            break

    found = audit(source.valid, server.payments_by_order(), lines)
    log = server.request_log()
    by_status = Counter(r.status for r in log if r.method == "POST" and r.path.startswith("/api/"))
    print(
        f"\n[e2e faults] rows={ROWS} refused={source.refused_rows} runs={runs} "
        f"duplicates={len(found.duplicates)} missing={len(found.missing)} "
        f"report_mismatches={len(found.report_mismatches)} "
        f"posts={sum(by_status.values())} post_statuses={dict(sorted(by_status.items(), key=str))} "
        f"token_requests={sum(s['requests']['token_requests'] for s in summaries)}"
    )

    # Every fault really fired, or the test proves less than it claims.
    assert by_status[500] + by_status[503] > 0
    assert by_status[None] > 0  # dropped connections, before or after the write
    assert by_status[429] > 0
    assert sum(s["requests"]["token_requests"] for s in summaries) > runs  # token refreshed

    assert found.ok, found
    assert statuses["created"] + statuses["already_created"] == ROWS
    assert statuses["duplicate"] == 1
    assert statuses["invalid"] == 2
    by_order = {line["order_id"]: line for line in lines if line["status"] in DONE}
    assert all(by_order[o]["payment_source_token"] == "****" + o[-4:] for o in orders)
    assert all(line["status"] not in DONE for line in lines[ROWS:])


def test_rerun_sends_nothing_and_reports_already_created(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    server = sandbox_factory(open_orders=True, limits=None, token_limit=None, faults=FAULTS, seed=7)
    source = write_orders(tmp_path / "orders.csv", order_ids(60))
    state = tmp_path / "state.sqlite"
    runner = CliRunner()
    first = tmp_path / "first.csv"
    for _ in range(MAX_RUNS):
        result = runner.invoke(main, run_args(source.path, state, first), env=server.env())
        if result.exit_code == 0:
            break
    assert result.exit_code == 0, result.output
    posts_before = post_count(server)

    second = tmp_path / "second.csv"
    result = runner.invoke(main, run_args(source.path, state, second), env=server.env())

    assert result.exit_code == 0, result.output
    assert post_count(server) == posts_before  # resume sends nothing for created orders
    lines = read_report(second)
    assert {line["status"] for line in lines} == {"already_created"}
    assert audit(source.valid, server.payments_by_order(), lines).ok


def test_max_attempts_counts_the_sends_of_this_run(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    # Every POST fails with a 503 before the write: unknown, looked up, not found, resent.
    server = sandbox_factory(
        open_orders=True, limits=None, token_limit=None, faults=Faults(p_5xx=1.0)
    )
    source = write_orders(tmp_path / "orders.csv", order_ids(1))
    state = tmp_path / "state.sqlite"
    runner = CliRunner()
    sends = []
    for run in (1, 2):
        before = post_count(server)
        report = tmp_path / f"report-{run}.csv"
        args = run_args(source.path, state, report, "--max-attempts", "3")
        result = runner.invoke(main, args, env=server.env())
        assert result.exit_code == 1, result.output
        sends.append(post_count(server) - before)
        (line,) = read_report(report)
        assert line["status"] == "failed"
        assert line["attempts"] == str(3 * run)  # the report counts every run's sends

    assert sends == [3, 3]  # the next run gets its own --max-attempts, as the help says
    assert server.payments_by_order() == {}


def test_an_order_not_pending_is_refused_by_the_preflight_until_it_is_fixed(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    server = sandbox_factory(
        open_orders=True, limits=None, token_limit=None, orders={"ORD00001": "placed"}
    )
    first = write_orders(tmp_path / "orders.csv", order_ids(2))
    state = tmp_path / "state.sqlite"
    runner = CliRunner()

    def run(name: str, code: int) -> tuple[int, dict[str, dict[str, str]]]:
        before = post_count(server)
        report = tmp_path / f"{name}-report.csv"  # never the input: that name would be taken
        result = runner.invoke(main, run_args(first.path, state, report), env=server.env())
        assert result.exit_code == code, result.output
        return post_count(server) - before, {r["order_id"]: r for r in read_report(report)}

    posts, lines = run("first", 1)
    assert posts == 1  # the placed order costs a lookup, never a write
    assert lines["ORD00001"]["status"] == "failed"
    assert lines["ORD00001"]["error_code"] == "ORDER_NOT_PENDING"
    assert "placed" in lines["ORD00001"]["error_detail"]

    posts, lines = run("same-file", 1)
    assert posts == 0  # still placed: looked at again, not sent
    assert lines["ORD00001"]["error_code"] == "ORDER_NOT_PENDING"
    assert lines["ORD00002"]["status"] == "already_created"

    server.add_order("ORD00001", status="pending")  # fixed on the dashboard
    posts, lines = run("fixed", 0)
    assert posts == 1
    assert lines["ORD00001"]["status"] == "created"
    assert {o: len(p) for o, p in server.payments_by_order().items()} == {
        "ORD00001": 1,
        "ORD00002": 1,
    }


def test_a_streamed_401_from_a_real_server_is_refreshed_and_resent(
    sandbox: SandboxServer,
) -> None:
    # MockTransport hands httpx bodies already read; only a real server streams them, which
    # is where BearerAuth once failed with ResponseNotRead on an expired token.
    fresh = httpx.post(
        sandbox.auth_url,
        json={
            "grant_type": "client_credentials",
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
        },
    ).json()["access_token"]

    class StaleFirst:
        async def token(self) -> str:
            return "expired-token"

        async def rejected(self, value: str) -> str:
            assert value == "expired-token"
            return str(fresh)

    async def fetch() -> httpx.Response:
        async with httpx.AsyncClient() as client:
            return await client.get(
                sandbox.base_url + "/api/external_payments",
                headers={"Accept": "application/vnd.api+json"},
                auth=BearerAuth(cast(TokenProvider, StaleFirst())),
            )

    response = asyncio.run(fetch())

    assert response.status_code == 200
    assert [r.status for r in sandbox.request_log() if r.path.startswith("/api/")] == [401, 200]


class _RefusedToken(httpx.AsyncBaseTransport):
    """Sends every POST with a token the server refuses, even after the one refresh."""

    def __init__(self) -> None:
        self._real = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.startswith("/api/"):
            request.headers["Authorization"] = "Bearer not-a-token-the-server-knows"
        return await self._real.handle_async_request(request)

    async def aclose(self) -> None:
        await self._real.aclose()


def test_a_401_on_a_row_is_not_a_permanent_failure_of_its_payload(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    source = write_orders(tmp_path / "orders.csv", order_ids(3))
    options = RunOptions(
        input_path=source.path,
        report_path=tmp_path / "refused.csv",
        state_path=tmp_path / "state.sqlite",
        rate_limits=("100000/1s",),
        timeout=1.0,
        settle_delay=0.5,
        xlsx=False,
    )
    config = ApiConfig.from_env(sandbox.env())

    async def refused_run() -> RunResult:
        async with httpx.AsyncClient(transport=_RefusedToken()) as client:
            return await run_payments(options, config, client=client)

    first = asyncio.run(refused_run())
    assert first.counts == {"failed": 3}
    assert {line["error_code"] for line in read_report(tmp_path / "refused.csv")} == {
        "INVALID_TOKEN"
    }

    # Same file, same payloads, a token the server accepts: the rows are sent this time.
    again = replace(options, report_path=tmp_path / "again.csv")
    second = asyncio.run(run_payments(again, config))

    assert second.exit_code == 0
    assert audit(source.valid, sandbox.payments_by_order(), read_report(tmp_path / "again.csv")).ok
