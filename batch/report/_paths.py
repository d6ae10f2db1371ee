"""Where the report files go: names that never collide, and writability checked up front."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from batch.errors import FileSystemError

STAGING_PREFIX = ".paybatch-"
# A staging directory untouched this long belongs to a writer that died: a live one
# writes to its files continuously.
STALE_AFTER_S = 300.0


@dataclass(frozen=True)
class ReportPaths:
    """Where a committed report lives."""

    csv: Path
    xlsx: Path | None
    errors: Path  # the rows that need a person, beside the report

    def all(self) -> list[Path]:
        return [p for p in (self.csv, self.xlsx, self.errors) if p is not None]


def report_files(path: Path, *, xlsx: bool, suffix: str = "") -> ReportPaths:
    """The files for `--report path`: `x.xlsx` (any case) is the XLSX, the CSV goes beside it."""
    path = Path(path)
    if path.suffix.lower() == ".xlsx":
        xlsx_path = path
        csv_path = path.with_suffix(".csv")
    else:
        csv_path = path
        xlsx_path = path.with_suffix(".xlsx")
    if suffix:
        csv_path = csv_path.with_name(csv_path.stem + suffix + csv_path.suffix)
        xlsx_path = xlsx_path.with_name(xlsx_path.stem + suffix + xlsx_path.suffix)
    errors = csv_path.with_name(csv_path.stem + "-errors.csv")
    return ReportPaths(csv=csv_path, xlsx=xlsx_path if xlsx else None, errors=errors)


def default_report_path(input_path: Path, now: datetime, directory: Path = Path("reports")) -> Path:
    """`reports/<input-stem>-<UTC yyyymmddTHHMMSSZ>.csv`, with `-2`, `-3`... if that is taken.

    A rerun within the same second must not replace the first run's report.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = directory / f"{input_path.stem}-{stamp}.csv"
    for n in itertools.count(1):
        paths = report_files(base, xlsx=True, suffix="" if n == 1 else f"-{n}")
        if not any(os.path.lexists(p) for p in paths.all()):
            return paths.csv
    raise AssertionError("unreachable")


def check_writable(path: Path, what: str) -> None:
    """Make sure a file can be created at `path`: create its directory, write and delete a probe.

    Raises FileSystemError naming the path and the cause (read-only, full, not a directory).
    """
    if path.is_dir():
        raise FileSystemError(f"cannot write {what} {path}: it is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=STAGING_PREFIX, suffix=".probe", dir=path.parent)
        try:
            os.write(fd, b"probe")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise FileSystemError.wrap(what, path, exc) from None


def remove_stale_staging(directory: Path, *, now: float | None = None) -> list[Path]:
    """Remove `.paybatch-*` leftovers of a killed report write; returns what was removed."""
    now = time.time() if now is None else now
    removed: list[Path] = []
    with contextlib.suppress(OSError):
        for entry in directory.glob(STAGING_PREFIX + "*"):
            if entry.is_dir() and now - _newest_mtime(entry) > STALE_AFTER_S:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def _newest_mtime(directory: Path) -> float:
    newest = directory.stat().st_mtime
    for child in directory.iterdir():
        with contextlib.suppress(OSError):
            newest = max(newest, child.stat().st_mtime)
    return newest


def check_run_paths(
    report: Path,
    *,
    xlsx: bool,
    input_path: Path,
    state: Path | None = None,
    summary: Path | None = None,
) -> None:
    """Before anything is sent: every file the run writes can be created; stale staging goes.

    Raises FileSystemError (one line: the path and the cause).
    """
    paths = report_files(report, xlsx=xlsx)
    for path in paths.all():
        if path.is_dir():
            raise FileSystemError(f"cannot write the report {path}: it is a directory")
        if _same_file(path, input_path):
            raise FileSystemError(f"cannot write the report {path}: it is the input file")
    check_writable(paths.csv, "the report")
    remove_stale_staging(paths.csv.parent)
    if state is not None:
        check_writable(state, "the state file")
        if state.exists() and not os.access(state, os.W_OK):
            raise FileSystemError(f"cannot write the state file {state}: Permission denied")
    if summary is not None and str(summary) != "-":  # `-` is standard output
        check_writable(summary, "the run summary")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False
