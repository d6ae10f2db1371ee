"""Workbook sheets (xlsx, xlsm, xlsb, xls, ods) read with python-calamine: every row.

calamine reads the cells themselves, so a stale `<dimension>` tag loses nothing (openpyxl's
read-only mode trusted it and dropped rows). A sheet is loaded whole for each pass, which
for 200,000 rows takes under a second and ~100 MB; nothing is kept between passes.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from python_calamine import CalamineSheet, CalamineWorkbook, SheetTypeEnum, SheetVisibleEnum

from batch.errors import InputFileError
from batch.inputs import _messages as msg
from batch.inputs._detect import FileKind
from batch.rows import RowProblem, TypedCell

Cell = int | float | str | bool | dt.date | dt.time | dt.timedelta
SheetRecord = tuple[int, list[Cell]]

NUMERIC_KEY = "NUMERIC_KEY"
FORMULA_WITHOUT_VALUE = "FORMULA_WITHOUT_VALUE"
ERROR_CELL = "ERROR_CELL"
# Excel keeps 15 significant digits of a number; a longer one was rounded when typed.
EXCEL_DIGITS = 15


def cell_text(value: Cell) -> str:
    """A cell as the text a person sees: 12345 not 12345.0, dates in ISO form.

    Numbers and dates come back as a `TypedCell`: that text, with the value beside it, so
    the XLSX report can keep them numbers and dates.
    """
    if type(value) is str:
        return value.strip()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 10**EXCEL_DIGITS:
            return TypedCell(str(int(value)), value)
        return TypedCell(repr(value), value)
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


def numeric_key_problem(column: str, value: Cell) -> RowProblem | None:
    """A key stored as a number is refused when Excel may have changed it."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not value.is_integer():
        why = "a number with a fraction"
    elif abs(value) >= 10**EXCEL_DIGITS:
        why = f"a number of more than {EXCEL_DIGITS} digits, which Excel rounds"
    else:
        return None
    detail = (
        f"{column} is stored as {why}, so it may not be what was typed;"
        " format the column as Text and re-enter the value"
    )
    return RowProblem(NUMERIC_KEY, detail)


class Workbook:
    """An open workbook: its worksheets by name, and each sheet's rows on demand."""

    def __init__(self, path: Path, kind: FileKind) -> None:
        self._path = path
        self._kind = kind
        try:
            self._book = CalamineWorkbook.from_path(str(path))
            meta = self._book.sheets_metadata
        except BaseException as exc:
            raise self._corrupt(exc) from None
        self.names = [m.name for m in meta if m.typ == SheetTypeEnum.WorkSheet]
        self.hidden = {m.name for m in meta if m.visible != SheetVisibleEnum.Visible}

    def _corrupt(self, exc: BaseException) -> InputFileError:
        # calamine raises its own errors, and OSError, for a bad file; a panic in its Rust
        # code surfaces as pyo3's PanicException, a BaseException. Anything else goes on.
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise exc
        return InputFileError(
            msg.CORRUPT_WORKBOOK.format(name=self._path.name, format=self._kind.label)
        )

    def sheet(self, name: str) -> CalamineSheet:
        """Sheet `name`, loaded whole (calamine has no lazy rows); it outlives the workbook."""
        try:
            return self._book.get_sheet_by_name(name)
        except BaseException as exc:
            raise self._corrupt(exc) from None

    def close(self) -> None:
        self._book.close()


def sheet_records(sheet: CalamineSheet) -> Iterator[SheetRecord]:
    """(spreadsheet row, raw cells from column A) for every row of a loaded sheet."""
    start = sheet.start
    if start is None:  # an empty sheet (iter_rows() cannot start on one)
        return
    # Rows come from row 1, cells from the first used column: pad to column A.
    pad: list[Cell] = [""] * start[1]
    for number, values in enumerate(sheet.iter_rows(), start=1):
        yield number, (pad + values if pad else values)


def sheet_text(sheet: CalamineSheet) -> Iterator[tuple[int, list[str]]]:
    """The rows of a loaded sheet as text, for finding the header."""
    for number, values in sheet_records(sheet):
        yield number, [cell_text(v) for v in values]


@contextmanager
def open_workbook(path: Path, kind: FileKind) -> Iterator[Workbook]:
    book = Workbook(path, kind)
    try:
        if not book.names:
            raise InputFileError(msg.NO_SHEETS.format(name=path.name))
        yield book
    finally:
        book.close()


_ATTR = re.compile(r'([\w:]+)="([^"]*)"')
_SHEET_TAG = re.compile(r"<(?:\w+:)?sheet\b[^>]*>")
_REL_TAG = re.compile(r"<(?:\w+:)?Relationship\b[^>]*>")


def _xlsx_sheets(z: zipfile.ZipFile) -> list[dict[str, str]]:
    text = z.read("xl/workbook.xml").decode("utf-8", "replace")
    return [dict(_ATTR.findall(tag)) for tag in _SHEET_TAG.findall(text)]


def active_sheet(path: Path, kind: FileKind) -> str | None:
    """The sheet the workbook was saved with on screen, where the format says (xlsx, ods)."""
    try:
        with zipfile.ZipFile(path) as z:
            if kind is FileKind.XLSX:
                found = re.search(r'activeTab="(\d+)"', z.read("xl/workbook.xml").decode("utf-8"))
                sheets = _xlsx_sheets(z)
                index = int(found.group(1)) if found else 0
                return html.unescape(sheets[index]["name"]) if index < len(sheets) else None
            if kind is FileKind.ODS and "settings.xml" in z.namelist():
                settings = z.read("settings.xml").decode("utf-8")
                found = re.search(r'config:name="ActiveTable"[^>]*>([^<]*)<', settings)
                return html.unescape(found.group(1)) if found else None
    except (KeyError, OSError, ValueError, zipfile.BadZipFile):
        return None
    return None


def _sheet_part(z: zipfile.ZipFile, name: str) -> str | None:
    rel_id = next(
        (s.get("r:id") for s in _xlsx_sheets(z) if html.unescape(s.get("name", "")) == name), None
    )
    rels = z.read("xl/_rels/workbook.xml.rels").decode("utf-8", "replace")
    for tag in _REL_TAG.findall(rels):
        attrs = dict(_ATTR.findall(tag))
        if attrs.get("Id") == rel_id:
            target = attrs.get("Target", "")
            return target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    return None


# A cell holding a formula and no saved value, or a saved error (#N/A, #REF!...): calamine
# reads both as blank, which would hide why the cell is empty.
_UNSAVED = re.compile(
    rb'<c\b[^>]*?\br="([A-Z]+)([0-9]+)"([^>]*)>\s*(?:<f\b[^>]*?(?:/>|>[^<]*</f>)\s*)?'
    rb"(?:<v\s*/>|<v>([^<]*)</v>)?\s*</c>"
)
_CHUNK = 1 << 20


def _column_index(letters: bytes) -> int:
    index = 0
    for byte in letters:
        index = index * 26 + byte - 64
    return index - 1


def unsaved_cells(path: Path, name: str) -> dict[tuple[int, int], RowProblem]:
    """{(row, column index): problem} for an XLSX sheet's formulas without a value and errors."""
    found: dict[tuple[int, int], RowProblem] = {}
    try:
        with zipfile.ZipFile(path) as z:
            part = _sheet_part(z, name)
            if part is None:
                return found
            with z.open(part) as f:
                carry = b""
                while chunk := f.read(_CHUNK):
                    data = carry + chunk
                    cut = data.rfind(b"</c>") + 4
                    data, carry = data[:cut], data[cut:]
                    if b"<f" in data or b't="e"' in data:
                        _collect(data, found)
    except (KeyError, OSError, zipfile.BadZipFile):
        return found
    return found


def _collect(data: bytes, found: dict[tuple[int, int], RowProblem]) -> None:
    for match in _UNSAVED.finditer(data):
        letters, row, attrs, value = match.groups()
        is_formula = b"<f" in match.group(0)
        if b't="e"' in attrs and value:
            shown = value.decode("ascii", "replace")
            detail = f"the cell shows the error {shown}, not a value"
            found[int(row), _column_index(letters)] = RowProblem(ERROR_CELL, detail)
        elif is_formula and not value:
            detail = (
                "the cell is a formula with no saved value (the file was written by a program"
                " that does not calculate); open and save the file in Excel"
            )
            found[int(row), _column_index(letters)] = RowProblem(FORMULA_WITHOUT_VALUE, detail)
