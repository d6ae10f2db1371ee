"""The XLSX half of the report, streamed with xlsxwriter's constant_memory mode.

Text cells hold exactly what the CSV holds, leading `'` included. `write_string` never
makes a formula, so the guard is not needed inside the workbook itself; we keep it because
finance copies cells out and re-saves sheets as CSV, and the guard must survive that trip.
Strings longer than Excel's cell limit (32,767 characters) are cut there; the CSV keeps
them whole.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import xlsxwriter
from xlsxwriter.exceptions import FileCreateError

from batch.report._cells import Cell
from batch.rows import RowStatus, TypedCell

EXCEL_MAX_ROWS = 1_048_576
DEFAULT_SHEET_ROW_CAP = EXCEL_MAX_ROWS - 1  # one row per sheet is the header
EXCEL_MAX_CELL_CHARS = 32_767

SUMMARY_SHEET = "Summary"
ROWS_SHEET = "Rows"
ERRORS_SHEET = "Errors"
STATUS_COLUMN = 2  # index of "status" in REPORT_COLUMNS and in ERROR_COLUMNS
DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"

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
    RowStatus.SKIPPED: _GREY,
}

_MIN_WIDTH = 8
# Wider text wraps inside its column, so the sheet still prints one page wide and legible.
_MAX_WIDTH = 40
_TOP = {"valign": "top"}
_LINE_HEIGHT = 15  # points, Excel's default row height


class XlsxReport:
    """Stream report lines into "Errors" and "Rows" sheets, then fill "Summary" on close.

    constant_memory writes each sheet's rows strictly in order to its own temp file, so
    the Summary sheet can be added first (first tab) and filled last, and the two tables
    can grow side by side.
    """

    def __init__(
        self,
        path: Path,
        header: Sequence[str],
        *,
        error_header: Sequence[str],
        tmpdir: Path,
        sheet_row_cap: int,
    ) -> None:
        if not 1 <= sheet_row_cap <= DEFAULT_SHEET_ROW_CAP:
            raise ValueError(f"sheet_row_cap must be between 1 and {DEFAULT_SHEET_ROW_CAP}")
        self._book = xlsxwriter.Workbook(str(path), {**WORKBOOK_OPTIONS, "tmpdir": str(tmpdir)})
        self._cap = sheet_row_cap
        add = self._book.add_format
        self.bold = add({"bold": True, **_TOP})
        self.top = add(_TOP)
        # Our own numbers (row, http_status, attempts) are centred, so a right-aligned row
        # number never runs into the left-aligned order id beside it.
        self.centred = add({"align": "center", **_TOP})
        self.wrap = add({"text_wrap": True, **_TOP})
        self.date = add({"num_format": DATE_FORMAT, "align": "left", **_TOP})
        self.datetime = add({"num_format": DATETIME_FORMAT, "align": "left", **_TOP})
        self.status_formats = {
            status: add({**colours, **_TOP}) for status, colours in STATUS_COLOURS.items()
        }
        # The Summary reads as a form: labels right-aligned against their values.
        self._label = add({"bold": True, "align": "right"})
        self._heading = add({"bold": True, "underline": True})
        self._left = add({"align": "left"})
        self._summary = self._book.add_worksheet(SUMMARY_SHEET)
        self._closed = False
        # Errors before Rows: the to-do list up front, and "Rows 2"... still follow "Rows".
        self._errors = _Table(self, ERRORS_SHEET, error_header)
        self._rows = _Table(self, ROWS_SHEET, header)

    def add_sheet(self, title: str) -> Any:
        """A new worksheet, set up to print landscape, one page wide, header on every page."""
        sheet = self._book.add_worksheet(title)
        _print_setup(sheet)
        return sheet

    def write(self, cells: Sequence[Cell]) -> None:
        """Write one report line, spilling onto a new sheet at the cap."""
        self._rows.write(cells, self._cap)

    def write_error(self, cells: Sequence[Cell]) -> None:
        """Write one line of the Errors sheet."""
        self._errors.write(cells, self._cap)

    def close(self, summary: Sequence[Sequence[str | float]]) -> None:
        """Fill the Summary sheet (label-value lines; a lone label is a heading), write the file."""
        self._rows.finish()
        self._errors.finish()
        sheet = self._summary
        _print_setup(sheet)
        labels = [line[0] for line in summary if len(line) > 1 and isinstance(line[0], str)]
        sheet.set_column(0, 0, max(map(len, labels), default=10) + 2)
        sheet.set_column(1, 1, 70)
        for r, line in enumerate(summary):
            for c, value in enumerate(line):
                if isinstance(value, str):
                    # A line of one cell is a section heading.
                    fmt = (self._heading if len(line) == 1 else self._label) if c == 0 else None
                    sheet.write_string(r, c, value[:EXCEL_MAX_CELL_CHARS], fmt)
                else:
                    # Left-aligned, so a count sits right next to its label.
                    sheet.write_number(r, c, value, self._left)
        sheet.activate()
        self._close_book()

    def discard(self) -> None:
        """Release xlsxwriter's temp files; the caller deletes the output."""
        # close() is xlsxwriter's only public way to close its per-sheet temp files.
        self._close_book()

    def _close_book(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._book.close()
            except FileCreateError as exc:  # xlsxwriter wraps the OSError; give it back
                cause = exc.args[0] if exc.args else None
                if isinstance(cause, OSError):
                    raise cause from None
                raise


def _print_setup(sheet: Any) -> None:
    sheet.set_landscape()
    sheet.fit_to_pages(1, 0)  # one page wide, as many pages tall as it takes
    sheet.repeat_rows(0)
    sheet.set_margins(left=0.4, right=0.4, top=0.5, bottom=0.5)


def _wrapped_lines(text: str) -> int:
    """About how many lines `text` takes in a column `_MAX_WIDTH` characters wide."""
    return sum(max(1, -(-len(part) // _MAX_WIDTH)) for part in text.split("\n"))


class _Table:
    """One table of the workbook, over "Title", "Title 2"... sheets of at most `cap` rows."""

    def __init__(self, report: XlsxReport, title: str, header: Sequence[str]) -> None:
        self._report = report
        self._title = title
        self._header = list(header)
        self._sheets = 0
        self._sheet: Any = None
        self._rows = 0
        self._widths: list[int] = []
        self._new_sheet()

    def write(self, cells: Sequence[Cell], cap: int) -> None:
        if self._rows == cap:
            self.finish()
            self._new_sheet()
        self._rows += 1
        r, sheet = self._rows, self._sheet
        lines = 1
        for c, cell in enumerate(cells):
            if cell is None or cell == "":  # nothing to show; skipping keeps big reports fast
                continue
            if isinstance(cell, TypedCell):
                self._typed(r, c, cell)
                width = len(cell)
            elif isinstance(cell, int):
                sheet.write_number(r, c, cell, self._report.centred)
                width = len(str(cell))
            else:
                text = cell[:EXCEL_MAX_CELL_CHARS]
                fmt = self._report.status_formats.get(text) if c == STATUS_COLUMN else None
                if fmt is None and (len(text) > _MAX_WIDTH or "\n" in text):
                    fmt = self._report.wrap
                    lines = max(lines, _wrapped_lines(text))
                sheet.write_string(r, c, text, fmt or self._report.top)
                width = len(text)
            if width > self._widths[c]:
                self._widths[c] = width
        if lines > 1:
            # Neither Excel nor LibreOffice grows a row for wrapped text on opening; this
            # row is still the current one, which constant_memory lets us size.
            sheet.set_row(r, _LINE_HEIGHT * lines)

    def _typed(self, r: int, c: int, cell: TypedCell) -> None:
        value = cell.value
        if isinstance(value, dt.datetime):
            fmt = self._report.date if value.time() == dt.time(0) else self._report.datetime
            self._sheet.write_datetime(r, c, value, fmt)
        elif isinstance(value, dt.date):
            self._sheet.write_datetime(r, c, value, self._report.date)
        else:
            self._sheet.write_number(r, c, value, self._report.top)

    def _new_sheet(self) -> None:
        self._sheets += 1
        title = self._title if self._sheets == 1 else f"{self._title} {self._sheets}"
        self._sheet = self._report.add_sheet(title)
        self._sheet.freeze_panes(1, 0)
        for c, name in enumerate(self._header):
            self._sheet.write_string(0, c, name, self._report.bold)
        self._widths = [len(name) + 2 for name in self._header]  # room for the filter button
        self._rows = 0

    def finish(self) -> None:
        # Column settings and the filter range live outside <sheetData>, so constant_memory
        # lets us set them after the rows, when the widths and the last row are known.
        for c, width in enumerate(self._widths):
            self._sheet.set_column(c, c, min(max(width + 1, _MIN_WIDTH), _MAX_WIDTH))
        self._sheet.autofilter(0, 0, self._rows, len(self._header) - 1)
