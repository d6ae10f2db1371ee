"""Progress: a log line on a timer under cron, one ETA and the phase on a terminal."""

import asyncio
import io
import logging
from pathlib import Path
from typing import Any

import pytest

from batch.cli.progress import BarProgress, LogProgress
from batch.config import RunOptions
from batch.heartbeat import Heartbeat
from batch.progress import NullProgress, rows_text
from batch.ratelimit import RateLimiter, Window
from batch.run_context import Phase, RunContext


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "batch.progress"]


def test_log_progress_emits_a_line_every_interval_even_when_no_row_finishes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    progress = LogProgress(every=30.0, clock=lambda: now[0])
    progress.start(100)
    with caplog.at_level(logging.INFO, logger="batch.progress"):
        for second in range(0, 31):
            now[0] = float(second)
            progress.advance("created")
        for second in range(31, 91):  # a stall: only the heartbeat's eta() calls come
            now[0] = float(second)
            progress.eta(120.0)
    assert _lines(caplog) == [
        "progress: 31 of 100 rows; 31 created",
        "progress: 31 of 100 rows; 31 created; at least 2 min left at the rate limits",
        "progress: 31 of 100 rows; 31 created; at least 2 min left at the rate limits",
    ]
    last = [r for r in caplog.records if r.name == "batch.progress"][-1]
    assert last.counts == {"created": 31}  # type: ignore[attr-defined]


def test_log_progress_logs_each_phase_change_once_not_each_countdown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    progress = LogProgress(every=30.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="batch.progress"):
        progress.phase("waiting for the rate limit", "resuming in 6 s")
        progress.phase("waiting for the rate limit", "resuming in 5 s")
        progress.phase("looking up 12 unsettled rows")
        progress.phase("")
        progress.phase("looking up 12 unsettled rows")  # the same wait again, 0 s later
        progress.phase("")
        now[0] = 30.0
        progress.phase("looking up 12 unsettled rows")  # again, an interval later
    assert _lines(caplog) == [
        "waiting for the rate limit, resuming in 6 s",
        "looking up 12 unsettled rows",
        "looking up 12 unsettled rows",
    ]


def test_bar_shows_one_eta_the_counts_and_the_phase() -> None:
    stream = io.StringIO()
    bar = BarProgress(file=stream)
    bar.start(3)
    bar.eta(42.4)
    bar.advance("created")
    bar.advance("already_created")
    bar.phase("waiting for the rate limit", "resuming in 6 s")
    bar.close()
    text = stream.getvalue()
    assert (
        "ETA ≥ 42 s · 1 already created, 1 created · waiting for the rate limit, resuming in 6 s"
        in text
    )
    assert "2/3" in text
    assert "<" not in text  # tqdm's own remaining-time estimate is not shown


def test_bar_redraws_when_only_the_eta_comes() -> None:
    stream = io.StringIO()
    bar = BarProgress(file=stream)
    bar.start(10)
    before = stream.getvalue().count("\r")
    for seconds in (30.0, 29.0, 28.0):
        bar.eta(seconds)
    assert stream.getvalue().count("\r") >= before + 3
    assert "ETA ≥ 28 s" in stream.getvalue()
    bar.close()


class _Recorder(NullProgress):
    def __init__(self) -> None:
        self.etas: list[float] = []
        self.phases: list[tuple[str, str]] = []

    def eta(self, seconds: float) -> None:
        self.etas.append(seconds)

    def phase(self, text: str, detail: str = "") -> None:
        self.phases.append((text, detail))


def _context(tmp_path: Path, progress: _Recorder, **fields: Any) -> RunContext:
    """A run context with only what the heartbeat and the phases read."""
    defaults: dict[str, Any] = {
        "journal": None,
        "api": None,
        "limiter": None,
        "stopping": asyncio.Event(),
        "sleep": asyncio.sleep,
        "clock": lambda: 10.0,
        "wall": lambda: 10.0,
    }
    return RunContext(
        run_id="r",
        options=RunOptions(input_path=tmp_path),
        progress=progress,
        **{**defaults, **fields},
    )


def test_heartbeat_shows_a_rate_limit_wait_counting_down(tmp_path: Path) -> None:
    """A limiter that holds a ready row back 5 s: each beat shows the wait, counting down."""
    now = [0.0]
    limiter = RateLimiter([Window(1, 5.0)], clock=lambda: now[0], margin=0.0)
    asyncio.run(limiter.acquire())  # the window is full for 5 s
    progress = _Recorder()
    ctx = _context(tmp_path, progress, limiter=limiter, clock=lambda: now[0], total_rows=3)
    held = [True]
    beat = Heartbeat(ctx, held=lambda: held[0], sending=lambda: False)
    for second in range(7):
        now[0] = float(second)
        held[0] = second != 2  # a second in which no row is ready to send: no wait shown
        beat.beat()
    assert progress.phases == [
        ("waiting for the rate limit", "resuming in 5 s"),
        ("waiting for the rate limit", "resuming in 4 s"),
        ("", ""),
        ("waiting for the rate limit", "resuming in 2 s"),
        ("waiting for the rate limit", "resuming in 1 s"),
        ("", ""),  # the row went: no wait left
    ]
    assert progress.etas == [15.0, 14.0, 13.0, 12.0, 11.0, 10.0, 10.0]  # 3 rows at 1/5s


def test_phases_by_precedence_and_the_idle_only_ones_hidden_while_sending(
    tmp_path: Path,
) -> None:
    progress = _Recorder()
    ctx = _context(tmp_path, progress)
    ctx.set_phase("settle wait", Phase("2 rows to look up", 40.0, "in {} s"))
    ctx.set_phase("lookup", Phase("looking up 12 unsettled rows"))
    ctx.show_phase(sending=True)
    ctx.show_phase(sending=False)
    ctx.set_phase("lookup", None)
    ctx.show_phase(sending=False)
    ctx.set_phase("drain", Phase("stopping: waiting for 3 requests in flight", 20.0, "up to {} s"))
    ctx.show_phase(sending=True)
    assert progress.phases == [
        ("looking up 12 unsettled rows", ""),
        ("2 rows to look up", "in 30 s"),
        ("stopping: waiting for 3 requests in flight", "up to 10 s"),
    ]


def test_rows_text_says_one_row() -> None:
    assert (rows_text(1), rows_text(2), rows_text(1, "unsettled row")) == (
        "1 row",
        "2 rows",
        "1 unsettled row",
    )
