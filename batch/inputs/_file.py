"""`open_input`: one checked, restartable, streaming view of an orders file."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from batch.errors import InputFileError
from batch.inputs import _messages as msg
from batch.inputs._checks import DuplicateOrders, RowChecker
from batch.inputs._detect import Detected, FileKind, detect, stat_key
from batch.inputs._headers import Layout, build_layout, check_mapping
from batch.inputs._text import Record, sniff_delimiter, text_records
from batch.inputs._xlsx import xlsx_records
from batch.rows import OPTIONAL_COLUMNS, InputRow


def _is_blank(cells: list[str]) -> bool:
    return not any(cells)


class InputFile:
    """An opened input: its identity, headers, and rows that can be read again from the top."""

    def __init__(
        self,
        path: Path,
        detected: Detected,
        *,
        sheet: str | None,
        delimiter: str | None,
        columns: Mapping[str, str],
    ) -> None:
        self.path = path
        self.sha256 = detected.sha256
        self.kind = detected.kind
        self.encoding = detected.encoding  # Python codec name; None for XLSX
        self.delimiter = delimiter  # None for XLSX
        self.sheet = sheet
        self._detected = detected
        self._count: int | None = None
        self.header_row, layout = self._read_header(columns)
        self._layout: Layout = layout
        self.headers: list[str] = list(layout.headers)
        self.extra_headers: list[str] = [key for key, _ in layout.extra]
        # The report's input columns, in file order: InputRow.carried's keys.
        carried = {i: key for key, i in layout.extra}
        carried.update((i, c) for c, i in layout.known.items() if c in OPTIONAL_COLUMNS)
        self.carried_headers: list[str] = [carried[i] for i in sorted(carried)]

    def _records(self) -> Iterator[Record]:
        if self.kind is FileKind.XLSX:
            return xlsx_records(self.path, self.sheet)
        assert self.encoding is not None
        assert self.delimiter is not None
        return text_records(self.path, self.encoding, self.delimiter)

    def _read_header(self, columns: Mapping[str, str]) -> tuple[int, Layout]:
        records = self._records()
        try:
            for number, cells in records:
                if not _is_blank(cells):
                    return number, build_layout(self.path.name, cells, columns)
        finally:
            close = getattr(records, "close", None)
            if close is not None:
                close()
        raise InputFileError(msg.EMPTY.format(name=self.path.name))

    def _check_unchanged(self) -> None:
        try:
            now = stat_key(self.path)
        except OSError:
            now = (-1, -1)
        if now != (self._detected.size, self._detected.mtime_ns):
            raise InputFileError(msg.CHANGED.format(name=self.path.name))

    def _data_records(self) -> Iterator[Record]:
        self._check_unchanged()
        for number, cells in self._records():
            if number > self.header_row and not _is_blank(cells):
                yield number, cells
        self._check_unchanged()

    def rows(self) -> Iterator[InputRow]:
        """Checked rows, duplicates flagged; each call starts again from the top of the file."""
        checker = RowChecker(self._layout)
        duplicates = DuplicateOrders()
        for number, cells in self._data_records():
            yield duplicates.check(checker.check(number, cells))

    def count(self) -> int:
        """The number of non-blank data rows (parsed once, then remembered)."""
        if self._count is None:
            self._count = sum(1 for _ in self._data_records())
        return self._count


def open_input(
    path: Path, *, sheet: str | None = None, columns: Mapping[str, str] | None = None
) -> InputFile:
    """Open a CSV/TSV/TXT or XLSX file by its content; raise `InputFileError` if unusable."""
    path = Path(path)
    mapping = check_mapping(columns or {})
    detected = detect(path)
    delimiter: str | None = None
    if detected.kind is FileKind.TEXT:
        if sheet is not None:
            raise InputFileError(msg.SHEET_ON_TEXT.format(name=path.name, sheet=sheet))
        assert detected.encoding is not None
        delimiter = sniff_delimiter(path, detected.encoding)
        if delimiter is None:
            raise InputFileError(msg.EMPTY.format(name=path.name))
    return InputFile(path, detected, sheet=sheet, delimiter=delimiter, columns=mapping)
