"""Units of the deadline (--max-duration, --until) and of the unreachable-API stop (exit 5)."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from test_runner_outcomes import CONFIG, Server

from batch.api import Answer
from batch.cli import main
from batch.cli.progress import LogProgress
from batch.config import RunOptions, parse_clock_time, parse_duration
from batch.errors import ApiUnreachableError, UsageError
from batch.policy import Outcome
from batch.progress import NullProgress
from batch.run_context import UNREACHABLE_REQUESTS, Reachability, RunContext
from batch.runner import RunResult, run_payments


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5h", 18000.0), ("90m", 5400.0), ("3600s", 3600.0), ("1h30m", 5400.0), ("45", 45.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5x", "0s", "h", "-5m"])
def test_not_durations(text: str) -> None:
    with pytest.raises(UsageError, match="not a duration"):
        parse_duration(text)


def test_until_is_the_next_occurrence_of_a_local_time(tmp_path: Path) -> None:
    started = datetime(2026, 12, 1, 22, 0).astimezone()  # 22:00 local, whatever the zone
    morning = RunOptions(input_path=tmp_path, until=parse_clock_time("06:30"))
    assert morning.deadline(started) == (8.5 * 3600, "06:30")
    earlier = RunOptions(input_path=tmp_path, until=parse_clock_time("21:00"))
    assert earlier.deadline(started) == (23 * 3600, "21:00")  # tomorrow's
    both = RunOptions(input_path=tmp_path, until=parse_clock_time("06:30"), max_duration=3600)
    assert both.deadline(started) == (3600, "23:00 (--max-duration 1 h)")  # the earlier
    assert RunOptions(input_path=tmp_path).deadline(started) is None
    with pytest.raises(UsageError, match="not a time of day"):
        parse_clock_time("25:00")


def test_a_bad_deadline_option_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("order_id,payment_source_token\nA,tok_a\n", encoding="utf-8")
    for option, value in (("--max-duration", "soon"), ("--until", "6h30")):
        result = CliRunner().invoke(main, ["run", str(path), option, value])
        assert result.exit_code == 2
        assert "not a duration" in result.output or "not a time of day" in result.output
        assert "Traceback" not in result.output


def _context(now: list[float], tmp_path: Path) -> RunContext:
    return RunContext(
        run_id="r",
        journal=None,  # type: ignore[arg-type]
        api=None,  # type: ignore[arg-type]
        limiter=None,  # type: ignore[arg-type]
        options=RunOptions(input_path=tmp_path),
        progress=NullProgress(),
        stopping=asyncio.Event(),
        clock=lambda: now[0],
        sleep=asyncio.sleep,
        wall=lambda: now[0],
    )


REFUSED = Answer(Outcome.NOT_SENT, error_code="CONNECT_ERROR", unreached="connection refused")


def test_reachability_stops_only_after_a_streak_that_lasted(tmp_path: Path) -> None:
    now = [0.0]
    ctx = _context(now, tmp_path)
    reach = Reachability(ctx)
    for _ in range(UNREACHABLE_REQUESTS - 1):
        reach.observe(REFUSED)
        now[0] += 1.0
    reach.observe(Answer(Outcome.CREATED, 201, payment_id="P"))  # the server answered
    for _ in range(UNREACHABLE_REQUESTS - 1):
        reach.observe(REFUSED)
    assert not ctx.stopping.is_set()
    reach.observe(REFUSED)  # ten in a row, but within an instant: a restart, not an outage
    assert not ctx.stopping.is_set()
    now[0] += 5.0
    reach.observe(REFUSED)
    assert ctx.stopping.is_set()
    assert isinstance(ctx.stopped_by, ApiUnreachableError)
    assert ctx.stopped_by.cause == "connection refused"


def test_a_post_that_reached_the_server_but_was_lost_is_not_unreachable(tmp_path: Path) -> None:
    now = [0.0]
    ctx = _context(now, tmp_path)
    reach = Reachability(ctx)
    lost = Answer(Outcome.UNKNOWN, error_code="READ_TIMEOUT", unreached="timeout")
    for _ in range(3 * UNREACHABLE_REQUESTS):
        reach.observe(lost)
        now[0] += 1.0
    assert not ctx.stopping.is_set()


def test_the_api_refusing_connections_mid_run_exits_5_with_the_rows_left_not_attempted(
    tmp_path: Path,
) -> None:
    """The token and the first lookups work; then every POST's connection is refused."""
    server = Server({})
    posts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/api/external_payments":
            posts.append(request.url.path)
            raise httpx.ConnectError("All connection attempts failed") from (
                ConnectionRefusedError(111, "Connection refused")
            )
        return server(request)

    now = [0.0]

    async def sleep(seconds: float) -> None:  # virtual time: backoff and heartbeat alike
        now[0] += seconds
        await asyncio.sleep(0)

    csv = tmp_path / "in.csv"
    orders = [f"O{i:03d}" for i in range(100)]
    csv.write_text(
        "order_id,payment_source_token\n" + "".join(f"{o},tok_{o}\n" for o in orders),
        encoding="utf-8",
    )
    options = RunOptions(
        input_path=csv,
        report_path=tmp_path / "report.csv",
        state_path=tmp_path / "state.sqlite",
        xlsx=False,
        rate_limits=("100000/1s",),
        concurrency=2,
        fail_fast_after=0,
    )

    async def run() -> RunResult:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await run_payments(
                options, CONFIG, client=client, clock=lambda: now[0], sleep=sleep
            )

    result = asyncio.run(run())
    assert result.exit_code == 5
    assert "could not be reached (connection refused)" in result.message
    assert result.counts["not_attempted"] >= 90
    assert f"{result.counts['not_attempted']} rows not attempted" in result.message
    assert len(posts) < 50  # stopped, not every row tried five times


def test_a_lost_answer_says_why_the_run_waits_before_its_lookup(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The settle wait is a phase: under cron the log says what the run waits for."""
    server = Server({"A": ["lost"]})
    csv = tmp_path / "in.csv"
    csv.write_text("order_id,payment_source_token\nA,tok_A\n", encoding="utf-8")
    options = RunOptions(
        input_path=csv,
        report_path=tmp_path / "report.csv",
        state_path=tmp_path / "state.sqlite",
        xlsx=False,
        rate_limits=("100000/1s",),
        timeout=0.05,
        settle_delay=2.5,
        fail_fast_after=0,
    )

    async def run() -> RunResult:
        async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
            return await run_payments(
                options, CONFIG, client=client, progress=LogProgress(every=1.0)
            )

    with caplog.at_level(logging.INFO, logger="batch"):
        result = asyncio.run(run())
    assert result.exit_code == 0
    assert result.counts == {"created": 1}
    lines = [r.getMessage() for r in caplog.records if r.name == "batch.progress"]
    waits = [line for line in lines if line.startswith("1 row sent without a sure answer")]
    assert waits, lines
    assert re.fullmatch(
        r"1 row sent without a sure answer, to be looked up in [23] s, once a late answer "
        r"would have come",
        waits[0],
    )
    assert any("progress: 0 of 1 rows" in line and "sure answer" in line for line in lines)
