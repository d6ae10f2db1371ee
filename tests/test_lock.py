"""One run per state file; the lock dies with its holder, kill -9 included."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from batch.errors import LockHeldError
from batch.lock import StateLock

HOLDER = """
import sys, time
from pathlib import Path
from batch.lock import StateLock
lock = StateLock(Path(sys.argv[1]), started_at="2026-11-25T01:02:03Z")
lock.acquire()
print("locked", flush=True)
time.sleep(60)
"""


def hold(state: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(state)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_holder_is_refused_with_pid_and_start(tmp_path: Path) -> None:
    state = tmp_path / "paybatch.sqlite"
    proc = hold(state)
    try:
        with pytest.raises(LockHeldError) as caught:
            StateLock(state, started_at="now").acquire()
        message = str(caught.value)
        assert f"PID {proc.pid}" in message
        assert "started 2026-11-25T01:02:03Z" in message
        assert caught.value.exit_code == 3
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]


def test_kill_9_releases_the_lock(tmp_path: Path) -> None:
    state = tmp_path / "paybatch.sqlite"
    proc = hold(state)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()  # type: ignore[union-attr]
    deadline = time.monotonic() + 5
    while True:
        try:
            with StateLock(state, started_at="now"):
                break
        except LockHeldError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
