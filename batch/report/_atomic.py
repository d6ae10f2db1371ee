"""Atomic publication: write beside the target, fsync, then `os.replace`."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def fsync(path: Path) -> None:
    """Flush a closed file's data to disk, or make renames inside a directory durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Staging:
    """A hidden scratch directory beside the final files, so the last step is a rename.

    It lives in the target's directory because `os.replace` is atomic only within one
    filesystem. A crash leaves at most a `.paybatch-*` directory, never a half report at
    the final path.
    """

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.path = Path(tempfile.mkdtemp(prefix=".paybatch-", dir=directory))

    def file(self, name: str) -> Path:
        """A path inside the staging directory."""
        return self.path / name

    def publish(self, staged: Path, final: Path) -> None:
        """fsync a finished staged file and move it to its final path."""
        fsync(staged)
        os.replace(staged, final)

    def discard(self) -> None:
        """Remove the staging directory and anything left in it."""
        shutil.rmtree(self.path, ignore_errors=True)


def write_text_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` (UTF-8) so readers see the old file or the new, never half."""
    staging = Staging(path.parent)
    try:
        staged = staging.file(path.name)
        staged.write_text(text, encoding="utf-8")
        staging.publish(staged, path)
        fsync(path.parent)
    finally:
        staging.discard()
