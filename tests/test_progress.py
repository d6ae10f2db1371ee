"""Progress: a log line every N seconds under cron, counts and a rate-limit ETA on a terminal."""

import io
import logging

import pytest

from batch.cli.progress import BarProgress, LogProgress


def test_log_progress_emits_a_line_every_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    progress = LogProgress(every=30.0, clock=lambda: now[0])
    progress.start(100)
    with caplog.at_level(logging.INFO, logger="batch.progress"):
        for second in range(0, 61):
            now[0] = float(second)
            progress.advance("created")
    lines = [r for r in caplog.records if r.name == "batch.progress"]
    assert [r.getMessage() for r in lines] == [
        "progress: 31 of 100 rows",
        "progress: 61 of 100 rows",
    ]
    assert lines[-1].counts == {"created": 61}  # type: ignore[attr-defined]


def test_bar_shows_counts_and_the_rate_limit_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    bar = BarProgress()
    bar.start(3)
    bar.eta(42.4)
    bar.advance("created")
    bar.advance("failed")
    assert "created=1 failed=1 limit-eta≥42s" in bar._postfix()
    bar.close()
    assert "2/3" in stream.getvalue()
