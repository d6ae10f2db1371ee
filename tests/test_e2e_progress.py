"""Progress a person can trust, end to end: the bar on a pseudo-terminal, the cron line."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import SandboxFactory
from e2e import orders_csv, out_args

from batch.cli.progress import LogProgress
from batch.config import ApiConfig, RunOptions
from batch.runner import run_payments
from batch.sandbox import Faults, SandboxServer


def _read_all(fd: int, into: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO once the child has closed its end of the terminal
            return
        if not chunk:
            return
        into.extend(chunk)


def _on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """`python -m batch ARGS` with stderr on a 160-column pty; its exit code and screen."""
    pty = pytest.importorskip("pty")  # POSIX only, like the rest of this helper
    fcntl = pytest.importorskip("fcntl")
    termios = pytest.importorskip("termios")
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    seen = bytearray()
    reader = threading.Thread(target=_read_all, args=(leader, seen), daemon=True)
    reader.start()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "batch", *args],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=follower,
            timeout=120,
            check=False,
        )
    finally:
        os.close(follower)
    reader.join(10)
    os.close(leader)
    return proc.returncode, seen.decode("utf-8", "replace")


def test_the_bar_counts_a_resume_at_once_and_redraws_through_a_rate_limit_wait(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """A rerun: 3 rows already paid, 3 new at 3 requests per 5 s, so one ~5 s wait.

    The bar counts the 3 paid rows within the first second, and redraws each second of the
    wait with the limiter's countdown and tqdm's clock moving, with a single ETA.
    """
    ids = [f"B{i}" for i in range(6)]
    first = orders_csv(tmp_path, ids[:3])
    done = subprocess.run(
        [sys.executable, "-m", "batch", *out_args(tmp_path, first), "-q"],
        env={**os.environ, **sandbox.env()},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    every = orders_csv(tmp_path, ids)
    # 2 preflight lookups and 1 POST fit the first 5 s; the 2 other POSTs wait.
    args = [*out_args(tmp_path, every), "--rate-limit", "3/5s", "--progress"]
    code, screen = _on_a_terminal(args, sandbox.env())
    assert code == 0, screen
    frames = [f for f in re.split(r"[\r\n]+", screen) if "rows [" in f]
    assert frames, screen
    # The skipped rows are counted at once: within the first second, before any wait.
    skipped = next(f for f in frames if "3 already created" in f)
    assert re.search(r"rows \[00:0[01]", skipped), frames
    assert frames.index(skipped) < min(i for i, f in enumerate(frames) if "rate limit" in f)
    countdown = [
        int(m[1]) for f in frames if (m := re.search(r"rate limit, resuming in (\d+) s", f))
    ]
    assert len(set(countdown)) >= 3, frames  # redrawn at least 3 times while no row finished
    assert countdown == sorted(countdown, reverse=True)  # counting down, never up
    clocks = {m[1] for f in frames if "rate limit" in f and (m := re.search(r"\[(\d\d:\d\d)", f))}
    assert len(clocks) >= 3, frames  # tqdm's elapsed time moves during the wait
    assert all("ETA ≥" in f for f in frames if "rate limit" in f)  # the limiter's ETA
    assert not any("<" in f for f in frames)  # and not tqdm's own besides


def test_the_cron_progress_line_comes_during_a_stall(
    sandbox_factory: SandboxFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every request takes 2.5 s: the line still comes each (injected) second, and the
    preflight's lookup, which is all the run waits on at first, is logged as a phase."""
    server = sandbox_factory(
        open_orders=True, limits=None, token_limit=None, faults=Faults(latency_ms=(2500, 2500))
    )
    path = orders_csv(tmp_path, ["S1", "S2"])
    options = RunOptions(
        input_path=path,
        report_path=tmp_path / "out" / "report.csv",
        state_path=tmp_path / "out" / "state.sqlite",
        xlsx=False,
        rate_limits=("1000/1s",),
    )
    config = ApiConfig.from_env(server.env())
    with caplog.at_level(logging.INFO, logger="batch"):
        result = asyncio.run(run_payments(options, config, progress=LogProgress(every=1.0)))
    assert result.exit_code == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "batch.progress"]
    stalled = [line for line in lines if line.startswith("progress: 0 of 2 rows")]
    assert len(stalled) >= 3, lines  # >= 5 s with no row done, a line each second
    assert "looking up 2 rows before sending them (preflight)" in lines
