"""`open_input`: one checked, restartable, streaming view of an orders file."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path

from python_calamine import CalamineSheet

from batch.errors import InputFileError
from batch.inputs import _messages as msg
from batch.inputs._checks import DuplicateOrders, RowChecker
from batch.inputs._detect import Detected, FileKind, detect, stat_key
from batch.inputs._find import Search, header_layout, no_sheet_qualifies, search_header
from batch.inputs._headers import Layout, Match, check_mapping
from batch.inputs._sheets import (
    active_sheet,
    cell_text,
    numeric_key_problem,
    open_workbook,
    sheet_records,
    sheet_text,
    unsaved_cells,
)
from batch.inputs._text import (
    TextFormat,
    delimiter_order,
    quote_check,
    sample_records,
    sep_line_delimiter,
    text_records,
    widest_delimiter,
)
from batch.rows import OPTIONAL_COLUMNS, InputRow, RowProblem

log = logging.getLogger(__name__)
# (spreadsheet row, trimmed cells, a problem the reader found in a cell)
DataRecord = tuple[int, list[str], RowProblem | None]


class InputFile:
    """An opened input: its identity, headers, and rows that can be read again from the top.

    `header_row` is the spreadsheet row of the header (title rows may sit above it) and
    `sheet_name` the sheet read (None for text).
    """

    def __init__(
        self,
        path: Path,
        detected: Detected,
        *,
        text: TextFormat | None,
        sheet: str | None,
        columns: Mapping[str, str],
        match: Match,
    ) -> None:
        self.path = path
        self.sha256 = detected.sha256
        self.kind = detected.kind
        self.encoding = text.encoding if text else None  # Python codec name; None for a workbook
        self.delimiter = text.delimiter if text else None
        self.match: Match = match
        self._text = text
        self._detected = detected
        self._count: int | None = None
        self._unsaved: dict[tuple[int, int], RowProblem] = {}
        # The sheet loaded to find the header, kept for the first pass over the rows only:
        # loading is most of a workbook's reading time.
        self._loaded: CalamineSheet | None = None
        if text is not None:
            self.sheet_name: str | None = None
            search = search_header(path.name, text_records(path, text), columns, match)
            self.header_row, layout = header_layout(path.name, search, columns, match)
        else:
            self.sheet_name, self.header_row, layout = self._find_sheet(sheet, columns)
            if self.kind is FileKind.XLSX:
                self._unsaved = unsaved_cells(path, self.sheet_name)
        if self.header_row != 1:
            where = f" of sheet {self.sheet_name!r}" if self.sheet_name else ""
            log.info("%s: header found at row %d%s", path.name, self.header_row, where)
        self._layout: Layout = layout
        self.headers: list[str] = list(layout.headers)
        self.extra_headers: list[str] = [key for key, _ in layout.extra]
        # The report's input columns, in file order: InputRow.carried's keys.
        carried = {i: key for key, i in layout.extra}
        carried.update((i, c) for c, i in layout.known.items() if c in OPTIONAL_COLUMNS)
        self.carried_headers: list[str] = [carried[i] for i in sorted(carried)]

    def _find_sheet(self, sheet: str | None, columns: Mapping[str, str]) -> tuple[str, int, Layout]:
        name, match = self.path.name, self.match
        with open_workbook(self.path, self.kind) as book:
            if sheet is not None and sheet not in book.names:
                found = ", ".join(book.names)
                raise InputFileError(msg.NO_SUCH_SHEET.format(name=name, sheet=sheet, found=found))
            names = [sheet] if sheet is not None else book.names
            hidden = book.hidden
            searches: dict[str, Search] = {}
            for candidate in names:
                loaded = book.sheet(candidate)
                searches[candidate] = search_header(name, sheet_text(loaded), columns, match)
                if searches[candidate].header is not None and self._loaded is None:
                    self._loaded = loaded
        chosen = [n for n, s in searches.items() if s.header is not None]
        if len(names) == 1 or len(chosen) == 1:
            one = chosen[0] if chosen else names[0]
            return one, *header_layout(name, searches[one], columns, match)
        if chosen:
            listed = ", ".join(repr(n) + (" (hidden)" if n in hidden else "") for n in chosen)
            active = active_sheet(self.path, self.kind)
            saved = f" (the workbook was saved with sheet {active!r} active)" if active else ""
            raise InputFileError(msg.SEVERAL_SHEETS.format(name=name, sheets=listed, active=saved))
        raise no_sheet_qualifies(name, searches, columns, match)

    def _check_unchanged(self) -> None:
        try:
            now = stat_key(self.path)
        except OSError:
            now = (-1, -1)
        if now != (self._detected.size, self._detected.mtime_ns):
            raise InputFileError(msg.CHANGED.format(name=self.path.name))

    def _text_data(self, text: TextFormat) -> Iterator[DataRecord]:
        check = quote_check(self.path.name, self._layout, text.delimiter)
        records = text_records(self.path, text, check=check, after=self.header_row)
        header = self.header_row
        for number, cells in records:
            if number > header and any(cells):
                yield number, cells, None

    def _sheet_data(self) -> Iterator[DataRecord]:
        assert self.sheet_name is not None
        loaded, self._loaded = self._loaded, None
        if loaded is None:
            with open_workbook(self.path, self.kind) as book:
                loaded = book.sheet(self.sheet_name)
        layout, unsaved = self._layout, self._unsaved
        keys = [(c, layout.known[c]) for c in (layout.key, "payment_source_token")]
        known = list(layout.known.items())
        header = self.header_row
        for number, values in sheet_records(loaded):
            if number <= header:
                continue
            cells = [v.strip() if type(v) is str else cell_text(v) for v in values]
            if not any(cells) and not unsaved:
                continue
            problem = None
            size = len(values)
            for column, i in keys:
                if i < size and type(values[i]) is not str:
                    problem = problem or numeric_key_problem(column, values[i])
            if unsaved:
                for column, i in known:
                    flagged = unsaved.get((number, i))
                    if flagged is not None and not (cells[i] if i < size else ""):
                        problem = problem or RowProblem(flagged.code, f"{column}: {flagged.detail}")
            if problem is not None or any(cells):
                yield number, cells, problem

    def _data_records(self) -> Iterator[DataRecord]:
        self._check_unchanged()
        yield from self._text_data(self._text) if self._text else self._sheet_data()
        self._check_unchanged()

    def rows(self) -> Iterator[InputRow]:
        """Checked rows, duplicates flagged; each call starts again from the top of the file."""
        checker = RowChecker(self._layout)
        duplicates = DuplicateOrders(self._layout.key)
        for number, cells, flagged in self._data_records():
            yield duplicates.check(checker.check(number, cells, flagged))

    def count(self) -> int:
        """The number of non-blank data rows (parsed once, then remembered)."""
        if self._count is None:
            self._count = sum(1 for _ in self._data_records())
        return self._count


def _text_format(
    path: Path, detected: Detected, columns: Mapping[str, str], match: Match
) -> TextFormat:
    """The delimiter: a `sep=` line's, else the first under which the header is found."""
    assert detected.encoding is not None
    encoding, eof = detected.encoding, detected.eof_marker
    named = sep_line_delimiter(path, encoding)
    if named is not None:
        return TextFormat(encoding, named, sep_line=True, eof_marker=eof)
    for delimiter in delimiter_order(path):
        fmt = TextFormat(encoding, delimiter, eof_marker=eof)
        found: Search = search_header(path.name, sample_records(path, fmt), columns, match)
        if found.header is not None:
            return fmt
    widest = widest_delimiter(path, encoding)
    if widest is None:
        raise InputFileError(msg.EMPTY.format(name=path.name))
    return TextFormat(encoding, widest, eof_marker=eof)


def open_input(
    path: Path,
    *,
    sheet: str | None = None,
    columns: Mapping[str, str] | None = None,
    match: Match = "id",
) -> InputFile:
    """Open a CSV/TSV/TXT file or a workbook by its content; raise `InputFileError` if unusable.

    `match="number"` keys rows on `order_number` instead of `order_id`.
    """
    path = Path(path)
    mapping = check_mapping(columns or {}, match)
    detected = detect(path)
    text: TextFormat | None = None
    if detected.kind is FileKind.TEXT:
        if sheet is not None:
            raise InputFileError(msg.SHEET_ON_TEXT.format(name=path.name, sheet=sheet))
        text = _text_format(path, detected, mapping, match)
    return InputFile(path, detected, text=text, sheet=sheet, columns=mapping, match=match)
