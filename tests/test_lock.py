"""One run per organization and environment; the lock dies with its holder, kill -9 included.

The holder is named from the `runs` table of the state files the lock is told about.
"""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from batch.errors import LockHeldError
from batch.journal import Journal
from batch.lock import StateLock

HOLDER = """
import os, sys, time
from pathlib import Path
from batch.journal import Journal
from batch.lock import StateLock
lock = StateLock(Path(sys.argv[1]))
lock.acquire()
journal = Journal.open(Path(sys.argv[2]))
journal.begin_run("r-holder", pid=os.getpid(), host="", started_at="2026-11-25T01:02:03Z",
                  input_path="in.csv", input_sha256="x")
print("locked", flush=True)
time.sleep(60)
"""


def hold(lock: Path, state: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock), str(state)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait()
    proc.stdout.close()  # type: ignore[union-attr]


def test_second_holder_is_refused_with_pid_and_start_from_the_runs_table(tmp_path: Path) -> None:
    lock, state = tmp_path / "acme-test.lock", tmp_path / "acme-test.sqlite"
    proc = hold(lock, state)
    try:
        with pytest.raises(LockHeldError) as caught:
            StateLock(lock, state_files=[tmp_path / "other.sqlite", state]).acquire()
        message = str(caught.value)
        assert message.startswith(f"another paybatch run holds {lock} (")
        assert f"PID {proc.pid}, started 2026-11-25T01:02:03Z" in message
        assert caught.value.exit_code == 3
        assert lock.read_bytes() == b""  # the lock file itself says nothing
    finally:
        stop(proc)


def test_the_newest_unfinished_run_is_the_holder(tmp_path: Path) -> None:
    state = tmp_path / "s.sqlite"
    journal = Journal.open(state)
    for run, pid, started in [("a", 11, "2026-01-01T00:00:00Z"), ("b", 22, "2026-01-02T00:00:00Z")]:
        journal.begin_run(run, pid=pid, started_at=started, input_path="i", input_sha256="x")
    journal.begin_run(
        "c", pid=33, started_at="2026-01-03T00:00:00Z", input_path="i", input_sha256="x"
    )
    journal.finish_run("c", finished_at="2026-01-03T00:01:00Z", exit_code=0)
    journal.close()
    lock = StateLock(tmp_path / "l.lock", state_files=[state, tmp_path / "missing.sqlite"])
    assert lock.holder() == "PID 22, started 2026-01-02T00:00:00Z"
    assert StateLock(tmp_path / "l.lock").holder() == "holder unknown"


def test_a_holder_on_another_machine_is_named_with_it(tmp_path: Path) -> None:
    state = tmp_path / "s.sqlite"
    journal = Journal.open(state)
    journal.begin_run(
        "a", pid=7, host="cron-box-2", started_at="T", input_path="i", input_sha256="x"
    )
    journal.close()
    assert StateLock(tmp_path / "l.lock", state_files=[state]).holder() == (
        "PID 7 on cron-box-2, started T"
    )


def test_kill_9_releases_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "acme-test.lock"
    proc = hold(lock, tmp_path / "state.sqlite")
    proc.send_signal(signal.SIGKILL)
    stop(proc)
    deadline = time.monotonic() + 5
    while True:
        try:
            with StateLock(lock):
                break
        except LockHeldError:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_released_lock_can_be_taken_again_in_the_same_process(tmp_path: Path) -> None:
    lock = StateLock(tmp_path / "deep" / "dir" / "x.lock")
    with lock, pytest.raises(LockHeldError):
        StateLock(lock.path).acquire()
    with StateLock(lock.path):
        pass
