"""One run at a time per organization and environment: an OS file lock that dies with its process.

`filelock` takes the operating system's own lock (flock on Unix, LockFileEx on Windows),
which is dropped when the holder's handle closes, on every kind of process death, `kill -9`
included. The lock file itself holds nothing: the holder's PID and start time are read
from the `runs` table of the state files it may be using.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout

from batch.errors import LockHeldError, StateError
from batch.statedb import unfinished_runs


class StateLock:
    """An exclusive lock on `path`; a second taker gets LockHeldError naming the holder."""

    def __init__(self, path: Path, *, state_files: Sequence[Path] = ()) -> None:
        self.path = path
        self._state_files = tuple(dict.fromkeys(state_files))
        self._lock = FileLock(path, timeout=0, thread_local=False)

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        except Timeout:
            raise LockHeldError(
                f"another paybatch run holds {self.path} ({self.holder()}); "
                "wait for it to finish, or check that it is still alive"
            ) from None
        except OSError as exc:
            raise StateError(f"{self.path}: cannot take the lock ({exc.strerror or exc})") from None

    def holder(self) -> str:
        """`PID 4242, started 2026-11-25T01:02:03Z`: the newest run that never finished."""
        runs = [run for path in self._state_files for run in unfinished_runs(path)]
        if not runs:
            return "holder unknown"
        newest = max(runs, key=lambda run: run.started_at)
        where = f" on {newest.host}" if newest.host and newest.host != socket.gethostname() else ""
        return f"PID {newest.pid}{where}, started {newest.started_at}"

    def release(self) -> None:
        self._lock.release()

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
