"""A small formula-safe CSV table (UTF-8 with BOM), published atomically."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

from batch.errors import FileSystemError
from batch.report._atomic import Staging, fsync
from batch.report._cells import neutralise


def write_table(path: Path, header: Sequence[str], rows: Iterable[Sequence[str | int]]) -> None:
    """Write `rows` under `header`; text cells are neutralised, numbers stay numbers."""
    try:
        _write(path, header, rows)
    except OSError as exc:
        raise FileSystemError.wrap("the report", path, exc) from None


def _write(path: Path, header: Sequence[str], rows: Iterable[Sequence[str | int]]) -> None:
    staging = Staging(path.parent)
    try:
        staged = staging.file(path.name)
        with staged.open("w", encoding="utf-8-sig", newline="") as f:
            out = csv.writer(f, lineterminator="\r\n")
            out.writerow([neutralise(name) for name in header])
            for row in rows:
                out.writerow([neutralise(c) if isinstance(c, str) else c for c in row])
        staging.publish(staged, path)
        fsync(path.parent)
    finally:
        staging.discard()
