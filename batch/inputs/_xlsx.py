"""Records of an XLSX worksheet, read with openpyxl in read-only mode, cells as typed text."""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from batch.errors import InputFileError

if TYPE_CHECKING:
    from openpyxl.workbook.workbook import Workbook
from batch.inputs import _messages as msg
from batch.inputs._detect import open_bytes
from batch.rows import TypedCell

Record = tuple[int, list[str]]
# Rows are fetched in batches so openpyxl's warnings can be silenced without a
# catch_warnings() per row (and without leaving a filter active across yields).
FETCH_ROWS = 1000


def cell_text(value: object) -> str:
    """A cell as the text a person sees: 12345 not 12345.0, dates in ISO form."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    # Numbers and dates keep their value beside the text, for the report (TypedCell).
    if isinstance(value, float):
        return TypedCell(str(int(value)) if value.is_integer() else repr(value), value)
    if isinstance(value, int):
        return TypedCell(str(value), value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return TypedCell(value.date().isoformat(), value)
        return TypedCell(value.isoformat(), value)
    if isinstance(value, dt.date):
        return TypedCell(value.isoformat(), value)
    if isinstance(value, dt.time):
        return value.isoformat()
    return str(value).strip()


@contextmanager
def _workbook(path: Path) -> Iterator[Workbook]:
    # A file object, not the path: openpyxl refuses a workbook whose name ends in .csv.
    with open_bytes(path) as fh:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # Imported here: openpyxl (and numpy behind it) costs ~0.3 s at start-up,
                # which a CSV run should not pay.
                from openpyxl import load_workbook

                wb = load_workbook(fh, read_only=True, data_only=True)
        except Exception:  # openpyxl raises many kinds for a damaged zip or XML part
            raise InputFileError(msg.CORRUPT_XLSX.format(name=path.name)) from None
        try:
            yield wb
        finally:
            wb.close()


def xlsx_records(path: Path, sheet: str | None) -> Iterator[Record]:
    """Yield (spreadsheet row, trimmed cells) for the chosen sheet (default: the first)."""
    with _workbook(path) as wb:
        names = [ws.title for ws in wb.worksheets]
        if not names:
            raise InputFileError(msg.NO_SHEETS.format(name=path.name))
        if sheet is None:
            ws = wb.worksheets[0]
        elif sheet in names:
            ws = wb[sheet]
        else:
            found = ", ".join(names)
            raise InputFileError(msg.NO_SUCH_SHEET.format(name=path.name, sheet=sheet, found=found))
        rows = ws.iter_rows(values_only=True)
        number = 0
        while True:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    batch = list(islice(rows, FETCH_ROWS))
            except Exception:  # a damaged sheet part surfaces only while streaming
                raise InputFileError(msg.CORRUPT_XLSX.format(name=path.name)) from None
            if not batch:
                return
            for values in batch:
                number += 1
                yield number, [cell_text(v) for v in values]
