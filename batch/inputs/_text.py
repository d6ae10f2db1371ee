"""Records of a delimited text file: delimiter, Excel's `sep=` line, and CSV records with row
numbers, stopped when an unmatched quote would swallow the lines after it."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from batch.errors import InputFileError
from batch.inputs import _messages as msg
from batch.inputs._headers import Layout

DELIMITERS = (",", ";", "\t", "|")
SNIFF_CHARS = 64 * 1024
# Extensions whose files are tab-separated unless the header says otherwise
# ("Unicode Text" from Excel is a tab-separated .txt).
TAB_EXTENSIONS = (".tsv", ".tab", ".txt")
# Excel's first line naming the delimiter; Excel does not show it as a row.
_SEP_LINE = re.compile(r'"?sep=(.)"?\s*')

Record = tuple[int, list[str]]
# A line of only these is blank whichever delimiter the file turns out to use.
_BLANK_CHARS = "".join(DELIMITERS) + " \r\n\xa0"


@dataclass(frozen=True, slots=True)
class TextFormat:
    """How to split a text file into records."""

    encoding: str
    delimiter: str
    sep_line: bool = False  # the first line is `sep=X`: not a row
    eof_marker: bool = False  # the file ends in \x1a (DOS end of file): not data


def sep_line_delimiter(path: Path, encoding: str) -> str | None:
    """The delimiter named by a first line `sep=;` (any single character), else None."""
    with path.open(encoding=encoding, newline="") as f:
        first = f.readline(256)
    found = _SEP_LINE.fullmatch(first.lstrip("\ufeff"))
    return found.group(1) if found else None


def sample_records(path: Path, fmt: TextFormat) -> Iterator[Record]:
    """The records of the file's first 64 KiB, for choosing the delimiter."""
    with path.open(encoding=fmt.encoding, newline="") as f:
        if fmt.sep_line:
            f.readline()
        sample = f.read(SNIFF_CHARS)
    reader = csv.reader(io.StringIO(sample, newline=""), delimiter=fmt.delimiter)
    try:
        for number, record in enumerate(reader, start=1):
            yield number, [cell.strip() for cell in record]
    except csv.Error:
        return


def widest_delimiter(path: Path, encoding: str) -> str | None:
    """The candidate that splits the first 20 non-blank records into the most fields.

    None when no line holds anything but whitespace and delimiters: the file has no header.
    """
    with path.open(encoding=encoding, newline="") as f:
        sample = f.read(SNIFF_CHARS)
    best, best_fields = None, 0
    for delimiter in delimiter_order(path):
        fields = _widest_record(sample, delimiter)
        if fields > best_fields:
            best, best_fields = delimiter, fields
    return best


def delimiter_order(path: Path) -> tuple[str, ...]:
    """Candidates, the usual one for the extension first."""
    preferred = "\t" if path.suffix.lower() in TAB_EXTENSIONS else ","
    return (preferred, *(d for d in DELIMITERS if d != preferred))


def _widest_record(sample: str, delimiter: str, records: int = 20) -> int:
    widest = 0
    try:
        for record in csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter):
            if any(cell.strip(_BLANK_CHARS) for cell in record):
                widest = max(widest, len(record))
                records -= 1
                if not records:
                    break
    except csv.Error:
        return widest
    return widest


QuoteCheck = Callable[[int, list[str]], None]


def quote_check(name: str, layout: Layout, delimiter: str) -> QuoteCheck | None:
    """Stop at a record whose quoted cell spans lines that look like rows of their own."""
    if layout.delimiters < 1:
        return None  # one column: no line can be told from a row

    def check(number: int, record: list[str]) -> None:
        for index, cell in enumerate(record):
            if "\n" not in cell and "\r" not in cell:
                continue
            lines = cell.splitlines()[1:]
            rowlike = sum(line.count(delimiter) == layout.delimiters for line in lines)
            if rowlike:
                header = layout.headers[index] if index < layout.width else ""
                column = header or f"column {index + 1}"
                raise InputFileError(
                    msg.UNMATCHED_QUOTE.format(name=name, row=number, column=column, lines=rowlike)
                )

    return check


def text_records(
    path: Path, fmt: TextFormat, *, check: QuoteCheck | None = None, after: int = 0
) -> Iterator[Record]:
    """Yield (spreadsheet row, trimmed cells) per CSV record; a quoted newline stays in its row.

    `check` sees each record after row `after` that spans more than one line.
    """
    records = _records(path, fmt, check, after)
    return _without_eof_marker(records) if fmt.eof_marker else records


def _records(path: Path, fmt: TextFormat, check: QuoteCheck | None, after: int) -> Iterator[Record]:
    number = 0
    with path.open(encoding=fmt.encoding, newline="") as f:
        if fmt.sep_line:
            f.readline()
        reader = csv.reader(f, delimiter=fmt.delimiter)
        last = 0
        try:
            for record in reader:
                number += 1
                line = reader.line_num
                if line - last > 1 and check is not None and number > after:
                    check(number, record)
                last = line
                yield number, [cell.strip() for cell in record]
        except csv.Error as exc:
            raise InputFileError(
                msg.MALFORMED_CSV.format(name=path.name, row=number + 1, reason=exc)
            ) from None


def _without_eof_marker(records: Iterator[Record]) -> Iterator[Record]:
    previous: Record | None = None
    for record in records:
        if previous is not None:
            yield previous
        previous = record
    if previous is not None:
        number, cells = previous
        if cells and cells[-1].endswith("\x1a"):
            cells[-1] = cells[-1][:-1].strip()
        yield number, cells
