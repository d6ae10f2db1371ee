"""The XLSX half of the report, streamed with xlsxwriter's constant_memory mode.

Text cells hold exactly what the CSV holds, leading `'` included. `write_string` never
makes a formula, so the guard is not needed inside the workbook itself; we keep it because
finance copies cells out and re-saves sheets as CSV, and the guard must survive that trip.
Strings longer than Excel's cell limit (32,767 characters) are cut there; the CSV keeps
them whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import xlsxwriter

from batch.report._cells import Cell
from batch.rows import RowStatus

EXCEL_MAX_ROWS = 1_048_576
DEFAULT_SHEET_ROW_CAP = EXCEL_MAX_ROWS - 1  # one row per sheet is the header
EXCEL_MAX_CELL_CHARS = 32_767

SUMMARY_SHEET = "Summary"
ROWS_SHEET = "Rows"
STATUS_COLUMN = 2  # index of "status" in REPORT_COLUMNS

WORKBOOK_OPTIONS = {
    "constant_memory": True,
    "strings_to_formulas": False,
    "strings_to_urls": False,
    "strings_to_numbers": False,
}

# Excel's built-in "Good", "Bad", "Neutral" cell styles, plus grey for rows never sent.
_GREEN = {"bg_color": "#C6EFCE", "font_color": "#006100"}
_RED = {"bg_color": "#FFC7CE", "font_color": "#9C0006"}
_AMBER = {"bg_color": "#FFEB9C", "font_color": "#9C5700"}
_GREY = {"bg_color": "#D9D9D9", "font_color": "#595959"}
STATUS_COLOURS: dict[str, dict[str, str]] = {
    RowStatus.CREATED: _GREEN,
    RowStatus.ALREADY_CREATED: _GREEN,
    RowStatus.VALID: _GREEN,
    RowStatus.FAILED: _RED,
    RowStatus.INVALID: _AMBER,
    RowStatus.DUPLICATE: _AMBER,
    RowStatus.NOT_ATTEMPTED: _GREY,
}

_MIN_WIDTH = 8
_MAX_WIDTH = 60


class XlsxReport:
    """Stream report lines into "Rows" sheets, then fill the "Summary" sheet on close.

    constant_memory writes each sheet's rows strictly in order to its own temp file, so
    the Summary sheet can be added first (first tab) and filled last.
    """

    def __init__(
        self, path: Path, header: Sequence[str], *, tmpdir: Path, sheet_row_cap: int
    ) -> None:
        if not 1 <= sheet_row_cap <= DEFAULT_SHEET_ROW_CAP:
            raise ValueError(f"sheet_row_cap must be between 1 and {DEFAULT_SHEET_ROW_CAP}")
        self._book = xlsxwriter.Workbook(str(path), {**WORKBOOK_OPTIONS, "tmpdir": str(tmpdir)})
        self._header = list(header)
        self._cap = sheet_row_cap
        self._bold = self._book.add_format({"bold": True})
        self._status_formats = {
            status: self._book.add_format(colours) for status, colours in STATUS_COLOURS.items()
        }
        self._summary = self._book.add_worksheet(SUMMARY_SHEET)
        self._sheets = 0
        self._sheet: Any = None
        self._rows_in_sheet = 0
        self._widths: list[int] = []
        self._closed = False
        self._new_rows_sheet()

    def write(self, cells: Sequence[Cell]) -> None:
        """Write one report line, spilling onto a new sheet at the cap."""
        if self._rows_in_sheet == self._cap:
            self._finish_rows_sheet()
            self._new_rows_sheet()
        self._rows_in_sheet += 1
        r = self._rows_in_sheet
        for c, cell in enumerate(cells):
            if cell is None or cell == "":  # nothing to show; skipping keeps big reports fast
                continue
            if isinstance(cell, int):
                self._sheet.write_number(r, c, cell)
                width = len(str(cell))
            else:
                text = cell[:EXCEL_MAX_CELL_CHARS]
                fmt = self._status_formats.get(text) if c == STATUS_COLUMN else None
                self._sheet.write_string(r, c, text, fmt)
                width = len(text)
            if width > self._widths[c]:
                self._widths[c] = width

    def close(self, summary: Sequence[Sequence[str | float]]) -> None:
        """Fill the Summary sheet (label, value… lines; None-free) and write the file."""
        self._finish_rows_sheet()
        self._summary.set_column(0, 0, 24)
        self._summary.set_column(1, 1, 66)
        for r, line in enumerate(summary):
            for c, value in enumerate(line):
                if isinstance(value, str):
                    fmt = self._bold if c == 0 else None
                    self._summary.write_string(r, c, value[:EXCEL_MAX_CELL_CHARS], fmt)
                else:
                    self._summary.write_number(r, c, value)
        self._summary.activate()
        self._close_book()

    def discard(self) -> None:
        """Release xlsxwriter's temp files; the caller deletes the output."""
        # close() is xlsxwriter's only public way to close its per-sheet temp files.
        self._close_book()

    def _close_book(self) -> None:
        if not self._closed:
            self._closed = True
            self._book.close()

    def _new_rows_sheet(self) -> None:
        self._sheets += 1
        title = ROWS_SHEET if self._sheets == 1 else f"{ROWS_SHEET} {self._sheets}"
        self._sheet = self._book.add_worksheet(title)
        self._sheet.freeze_panes(1, 0)
        for c, name in enumerate(self._header):
            self._sheet.write_string(0, c, name, self._bold)
        self._widths = [len(name) + 2 for name in self._header]  # room for the filter button
        self._rows_in_sheet = 0

    def _finish_rows_sheet(self) -> None:
        # Column settings and the filter range live outside <sheetData>, so constant_memory
        # lets us set them after the rows, when the widths and the last row are known.
        for c, width in enumerate(self._widths):
            self._sheet.set_column(c, c, min(max(width + 1, _MIN_WIDTH), _MAX_WIDTH))
        self._sheet.autofilter(0, 0, self._rows_in_sheet, len(self._header) - 1)
