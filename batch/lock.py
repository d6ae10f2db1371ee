"""One run at a time per state file: an OS file lock that dies with its process."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from types import TracebackType

from batch.errors import LockHeldError


def lock_path_for(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".lock")


class StateLock:
    """An exclusive `flock` on `<state>.lock`, naming its holder's PID and start time.

    The kernel drops the lock when the holder's file descriptor closes, which happens
    on every kind of process death, `kill -9` included.
    """

    def __init__(self, state_path: Path, *, started_at: str) -> None:
        self.path = lock_path_for(state_path)
        self._started_at = started_at
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LockHeldError(
                f"another paybatch run holds {self.path} ({holder}); "
                "wait for it to finish, or check that it is still alive"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "started_at": self._started_at}).encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"PID {data['pid']}, started {data['started_at']}"
    except (ValueError, KeyError, TypeError, OSError):
        return "holder unknown"
