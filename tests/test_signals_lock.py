"""The CLI as a process: the organization's lock (exit 3, freed by kill -9) and SIGINT/SIGTERM.

A slow sandbox (latency on every /api/* request) keeps a run busy long enough to be
caught mid-send.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import SandboxFactory
from e2e import (
    ROOT,
    audit,
    cli_env,
    order_ids,
    post_count,
    read_report,
    rows_in_state,
    run_args,
    start_cli,
    write_orders,
)

from batch.sandbox import SandboxServer
from batch.sandbox.config import Faults

WAIT = 30.0


def _slow_sandbox(factory: SandboxFactory, latency_ms: float) -> SandboxServer:
    return factory(
        open_orders=True,
        limits=None,
        token_limit=None,
        faults=Faults(latency_ms=(latency_ms, latency_ms)),
    )


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batch", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT * 2,
        check=False,
    )


def test_second_run_exits_3_while_the_lock_is_held_and_runs_after_kill_9(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    server = _slow_sandbox(sandbox_factory, 300.0)
    env = cli_env(server.env())
    source = write_orders(tmp_path / "orders.csv", order_ids(40))
    state = tmp_path / "state.sqlite"
    holder = start_cli(
        run_args(source.path, state, tmp_path / "a.csv", "--concurrency", "1"),
        env,
        tmp_path / "a.log",
    )
    try:
        _wait_for(lambda: post_count(server) > 0, holder, "the first run's first POST")

        blocked = _run_cli(run_args(source.path, state, tmp_path / "b.csv"), env)

        assert blocked.returncode == 3, blocked.stderr
        assert "another paybatch run holds" in blocked.stderr
        assert f"PID {holder.pid}, started 20" in blocked.stderr
        assert not (tmp_path / "b.csv").exists()

        # Another state file for the same organization: the organization's lock still holds.
        elsewhere = _run_cli(
            run_args(source.path, tmp_path / "other.sqlite", tmp_path / "d.csv"), env
        )

        assert elsewhere.returncode == 3, elsewhere.stderr
        assert "another paybatch run holds" in elsewhere.stderr
        assert not (tmp_path / "d.csv").exists()
        assert not (tmp_path / "other.sqlite").exists()  # refused before it opened any state
        holder.send_signal(signal.SIGKILL)
        assert holder.wait(WAIT) == -signal.SIGKILL
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()

    # The kernel dropped the lock with the dead process; the rerun settles what it left.
    time.sleep(0.5)  # past the sandbox latency: a POST it already read has been processed
    after = _run_cli(run_args(source.path, state, tmp_path / "c.csv"), env)

    assert after.returncode == 0, after.stderr
    assert audit(source.valid, server.payments_by_order(), read_report(tmp_path / "c.csv")).ok


@pytest.mark.parametrize(
    ("sig", "code", "name"), [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")]
)
def test_signal_stops_sends_writes_the_report_and_exits(
    sandbox_factory: SandboxFactory,
    tmp_path: Path,
    sig: signal.Signals,
    code: int,
    name: str,
) -> None:
    server = _slow_sandbox(sandbox_factory, 150.0)
    env = cli_env(server.env())
    source = write_orders(tmp_path / "orders.csv", order_ids(80))
    state = tmp_path / "state.sqlite"
    report = tmp_path / "stopped.csv"
    # A 10 s timeout: on a loaded machine no answer is lost, so every row ends created or
    # not_attempted and the assertions below are exact.
    args = run_args(
        source.path, state, report, "--concurrency", "2", "--grace", "10", "--timeout", "10"
    )
    proc = start_cli(args, env, tmp_path / "run.log")
    try:
        _wait_for(lambda: len(server.payments_by_order()) >= 4, proc, "four payments")
        proc.send_signal(sig)
        assert proc.wait(WAIT) == code
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    output = (tmp_path / "run.log").read_text()
    assert f"interrupted by {name}" in output
    lines = read_report(report)
    statuses = Counter(line["status"] for line in lines)
    assert set(statuses) == {"created", "not_attempted"}, statuses  # in-flight ones finished
    payments = server.payments_by_order()
    assert statuses["created"] == len(payments) >= 4
    for line in lines:
        items = payments.get(line["order_id"], [])
        if line["status"] == "created":
            assert [p["id"] for p in items] == [line["external_payment_id"]]
        else:
            assert items == []
            assert line["external_payment_id"] == ""

    resumed = _run_cli(run_args(source.path, state, tmp_path / "resumed.csv"), env)

    assert resumed.returncode == 0, resumed.stderr
    final = read_report(tmp_path / "resumed.csv")
    assert audit(source.valid, server.payments_by_order(), final).ok
    assert Counter(line["status"] for line in final) == {
        "already_created": statuses["created"],
        "created": statuses["not_attempted"],
    }


def test_second_sigint_leaves_at_once_and_the_state_stays_consistent(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    latency = 2.0
    server = _slow_sandbox(sandbox_factory, latency * 1000)
    env = cli_env(server.env())
    source = write_orders(tmp_path / "orders.csv", order_ids(20))
    state = tmp_path / "state.sqlite"
    # Timeout and settle delay beyond the server's latency, as the defaults are for real.
    slow = ("--timeout", "10", "--settle-delay", str(latency + 1))
    args = run_args(source.path, state, tmp_path / "a.csv", "--concurrency", "4", "--grace", "30")
    proc = start_cli([*args, *slow], env, tmp_path / "run.log")
    try:
        _wait_for(lambda: rows_in_state(state, "sending") >= 1, proc, "a POST in flight")
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        assert proc.poll() is None  # the first Ctrl-C waits for the requests in flight
        proc.send_signal(signal.SIGINT)
        left = time.monotonic()
        assert proc.wait(WAIT) == 130
        assert time.monotonic() - left < latency  # did not wait for the answers
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    resumed = _run_cli(run_args(source.path, state, tmp_path / "b.csv", *slow), env)

    assert resumed.returncode == 0, resumed.stderr
    assert audit(source.valid, server.payments_by_order(), read_report(tmp_path / "b.csv")).ok
