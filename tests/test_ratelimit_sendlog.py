"""The per-host send log: kept between runs, so a rerun neither storms nor hangs."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import platformdirs
import pytest
from conftest import SandboxFactory
from e2e import cli_env, write_orders

from batch.sandbox import Limit
from batch.sendlog import KEEP_SECONDS, HostSendLog, data_dir, log_path, read_sends, write_sends


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_data_directory_is_paybatch_home_or_the_users() -> None:
    assert data_dir({"PAYBATCH_HOME": "/tmp/elsewhere"}) == Path("/tmp/elsewhere")
    assert data_dir({}) == platformdirs.user_data_path("paybatch")
    path = log_path(Path("/d"), "Acme.commercelayer.io:443")
    assert path == Path("/d/sendlog/acme.commercelayer.io_443.json")


def test_sends_survive_a_restart_in_wall_time(tmp_path: Path) -> None:
    path = tmp_path / "sendlog" / "host.json"
    first = HostSendLog(path, clock=Clock(100.0), wall=Clock(1_000_000.0))
    first.save([(99.0, False), (99.5, True)])
    # A new process: another monotonic origin, 30 s later on the wall.
    second = HostSendLog(path, clock=Clock(5.0), wall=Clock(1_000_030.0))
    assert second.load() == [(pytest.approx(-26.0), False), (pytest.approx(-25.5), True)]


def test_writes_merge_with_another_runs_and_forget_old_sends(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    write_sends(path, [(1000.0, False), (1001.0, True)], now=1001.0)
    write_sends(path, [(1001.0, True), (1002.0, False)], now=1002.0)
    assert read_sends(path) == [(1000.0, False), (1001.0, True), (1002.0, False)]
    write_sends(path, [], now=1000.0 + KEEP_SECONDS + 0.5)
    assert read_sends(path) == [(1001.0, True), (1002.0, False)]
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


@pytest.mark.parametrize("text", ["{", '{"sends": 3}', '{"sends": [[1, 0], ["x", 1], [2]]}'])
def test_a_damaged_log_is_empty_or_keeps_what_it_can(tmp_path: Path, text: str) -> None:
    path = tmp_path / "host.json"
    path.write_text(text, encoding="utf-8")
    assert read_sends(path) in ([], [(1.0, False)])


def test_a_log_that_cannot_be_written_is_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("", encoding="utf-8")
    sends = HostSendLog(blocked / "sendlog" / "h.json", clock=Clock(0.0), wall=Clock(0.0))
    with caplog.at_level(logging.WARNING, logger="batch.sendlog"):
        sends.save([(0.0, False)])
        sends.save([(0.0, False)])
    assert [r.message for r in caplog.records if "send log" in r.message] != []
    assert len(caplog.records) == 1


def _run(server_env: dict[str, str], work: Path, name: str, rows: int) -> int:
    orders = write_orders(work / f"{name}.csv", [f"{name.upper()}{i:04d}" for i in range(rows)])
    command = [sys.executable, "-m", "batch", "run", str(orders.path), "-q", "--no-progress"]
    command += ["--state", str(work / f"{name}.sqlite"), "--report", str(work / f"{name}.csv.out")]
    command += ["--no-xlsx", "--rate-limit", "5/1s", "--rate-limit", "15/5s"]
    return subprocess.run(command, env=cli_env(server_env), check=False, timeout=120).returncode


@pytest.mark.slow
def test_a_rerun_right_after_a_run_waits_for_the_windows_instead_of_storming(
    sandbox_factory: SandboxFactory, tmp_path: Path, paybatch_home: Path
) -> None:
    # Refused requests count and no Retry-After: the worst server for a rerun.
    server = sandbox_factory(
        open_orders=True,
        token_limit=None,
        limits=(Limit(5, 1.0, "endpoint"), Limit(15, 5.0, "class")),
        count_rejected=True,
        retry_after=False,
    )
    assert _run(server.env(), tmp_path, "first", 30) == 0
    first_done = time.monotonic()
    started = len(server.request_log())
    assert _run(server.env(), tmp_path, "again", 10) == 0
    took = time.monotonic() - first_done
    again = server.request_log()[started:]
    statuses = [r.status for r in again if r.path.startswith("/api/")]
    assert statuses.count(429) == 0
    assert statuses.count(201) == 10
    assert took < 20.0  # about one class window to drain, then 10 sends: no hang
    logged = json.loads(next((paybatch_home / "sendlog").iterdir()).read_text("utf-8"))
    assert len(logged["sends"]) >= 15
