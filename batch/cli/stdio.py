"""`-` as a file name: standard input for the orders file (CSV only)."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from batch.errors import UsageError

ZIP_MAGIC = b"PK\x03\x04"  # an XLSX is a zip file


@contextlib.contextmanager
def input_path(path: Path) -> Iterator[Path]:
    """The path itself, or for `-` standard input spooled to a temporary `stdin.csv`.

    A run reads its input more than once (count, send, report), so a pipe is copied first.
    """
    if str(path) != "-":
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="paybatch-stdin-") as tmp:
        spooled = Path(tmp) / "stdin.csv"
        stream = sys.stdin.buffer  # CliRunner swaps sys.stdin too
        with spooled.open("wb") as out:
            while chunk := stream.read(1 << 20):
                out.write(chunk)
        with spooled.open("rb") as f:
            if f.read(len(ZIP_MAGIC)) == ZIP_MAGIC:
                raise UsageError(
                    "standard input holds an XLSX workbook; only CSV can be read from `-`, "
                    "give the workbook's path instead"
                )
        yield spooled
