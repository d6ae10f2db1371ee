"""The recent send log of each API host, kept between runs in the user's data directory.

Commerce Layer counts requests per IP in sliding windows, and a run started while those
windows are still full (right after another run, or after another tool's burst) must
neither storm nor wait blindly. So each run seeds its limiter with the sends this machine
made to the same host in the last windows, and writes its own back: periodically and at
the end. It is per host, not in the per-organization state file, because the windows
are the IP's.

The file is `<data dir>/sendlog/<host>.json` with wall-clock send times and whether each
was refused; the data directory is `$PAYBATCH_HOME`, else
`platformdirs.user_data_path("paybatch")`. Writes go to a temporary file and replace the
old one (atomic on POSIX and Windows), merged with what another run may have written
meanwhile. A missing or damaged log is an empty one, and trouble writing it is a warning:
the log makes runs better behaved, it never stops one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from batch.statefile import data_dir

log = logging.getLogger(__name__)

# Older sends than this matter to no documented window (the longest is 60 s).
KEEP_SECONDS = 600.0
SAVE_EVERY = 5.0
_VERSION = 1

Send = tuple[float, bool]  # (time, refused)


def log_path(directory: Path, api_host: str) -> Path:
    """The host's log file: one per host and port, named so every file system takes it."""
    name = re.sub(r"[^A-Za-z0-9.-]", "_", api_host.strip().lower()) or "_"
    return directory / "sendlog" / f"{name}.json"


def read_sends(path: Path) -> list[Send]:
    """The (wall time, refused) entries of a log file; [] when it is missing or damaged."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except (OSError, ValueError) as exc:
        log.warning("ignoring the send log %s: %s", path, exc)
        return []
    entries = doc.get("sends") if isinstance(doc, dict) else None
    found: list[Send] = []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], int | float):
            found.append((float(entry[0]), bool(entry[1])))
    return [(at, refused) for at, refused in found if math.isfinite(at)]


def write_sends(path: Path, sends: Iterable[Send], *, now: float) -> None:
    """Merge `sends` (wall times) into the log file, keeping the last KEEP_SECONDS."""
    merged = {(round(at, 6), refused) for at, refused in read_sends(path) + list(sends)}
    kept = sorted(entry for entry in merged if entry[0] > now - KEEP_SECONDS)
    body = json.dumps({"version": _VERSION, "sends": [[at, int(r)] for at, r in kept]})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(body)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class HostSendLog:
    """One host's send log, in the time of a limiter's clock (monotonic, per process)."""

    def __init__(
        self, path: Path, *, clock: Callable[[], float], wall: Callable[[], float]
    ) -> None:
        self.path = path
        self._wall = wall
        self._offset = wall() - clock()  # wall = clock + offset, fixed for the run
        self._warned = False

    @classmethod
    def for_host(
        cls,
        api_host: str,
        *,
        clock: Callable[[], float],
        wall: Callable[[], float],
        env: Mapping[str, str] = os.environ,
    ) -> HostSendLog:
        return cls(log_path(data_dir(env), api_host), clock=clock, wall=wall)

    def load(self) -> list[Send]:
        """The earlier sends still in the log, in clock time."""
        return [(at - self._offset, refused) for at, refused in read_sends(self.path)]

    def save(self, sends: Sequence[Send]) -> None:
        """Write our sends (clock time) into the log; a failure is one warning, not an error."""
        try:
            wall = [(at + self._offset, refused) for at, refused in sends]
            write_sends(self.path, wall, now=self._wall())
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("could not write the send log %s: %s", self.path, exc)

    async def keep(self, history: Callable[[], Sequence[Send]], every: float = SAVE_EVERY) -> None:
        """Save `history()` every `every` seconds until cancelled (a crash loses little)."""
        while True:
            await asyncio.sleep(every)
            self.save(history())
