"""The CSV half of the report: UTF-8 with BOM and RFC 4180 quoting, so Excel opens it cleanly."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from batch.report._cells import Cell


class CsvReport:
    """Stream report lines to a CSV file."""

    def __init__(self, path: Path, header: Sequence[str]) -> None:
        # utf-8-sig writes the BOM Excel needs to guess UTF-8; newline="" leaves line
        # endings to the csv module, which writes RFC 4180's \r\n.
        self._file = path.open("w", encoding="utf-8-sig", newline="")
        self._writer = csv.writer(self._file, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        self._writer.writerow(header)

    def write(self, cells: Sequence[Cell]) -> None:
        """Write one line; None becomes an empty field."""
        self._writer.writerow(["" if cell is None else cell for cell in cells])

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        self._file.close()
