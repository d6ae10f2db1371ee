"""A run that must end by morning, and a run whose API goes away: both stop like a signal.

--max-duration stops sending on time (the server sees no POST after the deadline), the
rows not reached are not_attempted (exit 1), and the rerun finishes them, exactly once.
An API that stops answering mid-run stops the run with exit 5, naming the cause.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from conftest import SandboxFactory, stop_quietly
from e2e import audit, cli_env, order_ids, post_count, read_report, run_args, write_orders

from batch.sandbox import SandboxServer

ROWS = 40
DEADLINE = 2.0  # seconds of sending; 40 rows at 8/s need 5 s


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batch", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_max_duration_stops_sending_on_time_and_the_rerun_finishes(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    source = write_orders(tmp_path / "in.csv", order_ids(ROWS))
    state, report = tmp_path / "state.sqlite", tmp_path / "report.csv"
    env = cli_env(sandbox.env())
    args = run_args(source.path, state, report, "--rate-limit", "8/1s")
    stopped = _run([*args, "--max-duration", f"{DEADLINE:g}s"], env)
    assert stopped.returncode == 1, stopped.stderr
    log = sandbox.request_log()
    # The run's clock starts before its token request: the deadline is at most this.
    deadline = min(r.at for r in log if r.path == "/oauth/token") + DEADLINE
    posts = [r.at for r in log if r.method == "POST" and r.path.startswith("/api/")]
    assert posts, stopped.stderr
    assert max(posts) <= deadline + 0.5
    lines = read_report(report)
    left = [line for line in lines if line["status"] == "not_attempted"]
    assert 0 < len(left) < ROWS
    assert len(left) + sum(line["status"] == "created" for line in lines) == ROWS
    assert f"{len(left)} rows not attempted; the next run resumes them" in stopped.stderr
    assert "stopped at the deadline" in stopped.stderr
    sent = len(posts)

    rerun = _run(args, env)
    assert rerun.returncode == 0, rerun.stderr
    found = audit(source.valid, sandbox.payments_by_order(), read_report(report))
    assert found.ok, found
    assert post_count(sandbox) == sent + len(left)  # the rerun sent exactly the rows left


def test_until_a_local_time_stops_sending_then(sandbox: SandboxServer, tmp_path: Path) -> None:
    """--until HH:MM:SS, a few seconds from now in local time: the same stop, at that time."""
    source = write_orders(tmp_path / "in.csv", order_ids(60))  # 7.5 s at 8/s
    state, report = tmp_path / "state.sqlite", tmp_path / "report.csv"
    args = run_args(source.path, state, report, "--rate-limit", "8/1s")
    until = (datetime.now() + timedelta(seconds=5)).replace(microsecond=0)
    at_wall = until.timestamp()
    stopped = _run([*args, "--until", f"{until:%H:%M:%S}"], cli_env(sandbox.env()))
    assert stopped.returncode == 1, stopped.stderr
    # The message drops ":00" seconds, as a person would write it (a whole minute: "01:30").
    shown = f"{until:%H:%M:%S}" if until.second else f"{until:%H:%M}"
    assert f"stopped at the deadline {shown}" in stopped.stderr
    # The sandbox logs monotonic arrival times: map the deadline onto that clock.
    deadline = time.monotonic() - (time.time() - at_wall)
    posts = [r.at for r in sandbox.request_log() if r.method == "POST" and "/api/" in r.path]
    assert posts, stopped.stderr
    assert max(posts) <= deadline + 0.5
    assert any(line["status"] == "not_attempted" for line in read_report(report))


def test_the_api_going_away_mid_run_stops_with_exit_5_and_names_the_cause(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    server = sandbox_factory(open_orders=True, limits=None, token_limit=None)
    source = write_orders(tmp_path / "in.csv", order_ids(200))
    state, report = tmp_path / "state.sqlite", tmp_path / "report.csv"
    log = tmp_path / "run.log"
    args = run_args(source.path, state, report, "--rate-limit", "20/1s")
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "batch", *args],
            env=cli_env(server.env()),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        started = time.monotonic()
        while post_count(server) < 5 and time.monotonic() - started < 30:
            time.sleep(0.05)
        stop_quietly(server)  # connections are refused from now on
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = log.read_text()
    assert code == 5, output
    assert "the API could not be reached (connection refused)" in output, output
    lines = read_report(report)
    left = {line["order_id"] for line in lines if line["status"] == "not_attempted"}
    assert len(left) > 100, output  # stopped soon, not after every row's own retries
    payments = server.payments_by_order()
    assert not left & set(payments), output  # a row reported not attempted has no payment
    created = {line["order_id"] for line in lines if line["status"] == "created"}
    assert created <= set(payments), output
    assert all(len(payments[order]) == 1 for order in payments), output
