"""Records of a delimited text file: delimiter sniffing and CSV parsing with row numbers."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from batch.errors import InputFileError
from batch.inputs import _messages as msg

DELIMITERS = (",", ";", "\t", "|")
SNIFF_CHARS = 64 * 1024
# Extensions whose files are tab-separated unless the header says otherwise
# ("Unicode Text" from Excel is a tab-separated .txt).
TAB_EXTENSIONS = (".tsv", ".tab", ".txt")

Record = tuple[int, list[str]]
# A line of only these is blank whichever delimiter the file turns out to use.
_BLANK_CHARS = "".join(DELIMITERS) + " \r\n\xa0"


def sniff_delimiter(path: Path, encoding: str) -> str | None:
    """The candidate that splits the first non-blank record into the most fields.

    None when no line holds anything but whitespace and delimiters: the file has no header.
    """
    with path.open(encoding=encoding, newline="") as f:
        sample = f.read(SNIFF_CHARS)
    preferred = "\t" if path.suffix.lower() in TAB_EXTENSIONS else ","
    order = (preferred, *(d for d in DELIMITERS if d != preferred))
    best, best_fields = None, 0
    for delimiter in order:
        fields = _first_record_width(sample, delimiter)
        if fields > best_fields:
            best, best_fields = delimiter, fields
    return best


def _first_record_width(sample: str, delimiter: str) -> int:
    try:
        for record in csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter):
            if any(cell.strip(_BLANK_CHARS) for cell in record):
                return len(record)
    except csv.Error:
        return 0
    return 0


def text_records(path: Path, encoding: str, delimiter: str) -> Iterator[Record]:
    """Yield (spreadsheet row, trimmed cells) per CSV record; a quoted newline stays in its row."""
    number = 0
    with path.open(encoding=encoding, newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            for number, record in enumerate(reader, start=1):
                yield number, [cell.strip() for cell in record]
        except csv.Error as exc:
            raise InputFileError(
                msg.MALFORMED_CSV.format(name=path.name, row=number + 1, reason=exc)
            ) from None
