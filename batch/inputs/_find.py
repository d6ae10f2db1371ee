"""Finding the header row (within the first rows) and the sheet that holds the orders."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from batch.errors import InputFileError
from batch.inputs import _messages as msg
from batch.inputs._headers import (
    Layout,
    Match,
    build_layout,
    fields_for,
    normalise_header,
    suggest,
    trimmed_headers,
)

Record = tuple[int, list[str]]
# The header is the first row, among the first 20, in which both required fields appear.
HEADER_SEARCH_ROWS = 20
# paybatch's own files start with these columns: a report or error file fed back as input.
OWN_FILES = {
    ("row", "order_id", "status", "external_payment_id"): "report",
    ("row", "order_id", "status", "error_code"): "error file",
}


@dataclass(frozen=True, slots=True)
class Search:
    """What the first rows of a file or sheet showed."""

    header: Record | None  # the header row and its raw cells, when found
    first: list[str] | None  # the first non-blank row, trimmed
    best: list[str] | None  # the row closest to a header, for the missing-column message


def _check_not_own_file(name: str, normalised: list[str]) -> None:
    for block, what in OWN_FILES.items():
        if tuple(normalised[: len(block)]) == block:
            columns = ", ".join(block)
            raise InputFileError(msg.OWN_REPORT.format(name=name, what=what, columns=columns))


def _required_found(
    headers: list[str], normalised: list[str], columns: Mapping[str, str], match: Match
) -> int:
    found = 0
    for field in fields_for(match)[:2]:
        wanted = columns.get(field)
        if wanted is None:
            found += field in normalised
        else:
            found += wanted in headers or normalise_header(wanted) in normalised
    return found


def search_header(
    name: str, records: Iterable[Record], columns: Mapping[str, str], match: Match
) -> Search:
    """Look for the header in the first rows; raise if the file is one of paybatch's own."""
    rows = iter(records)
    try:
        return _search(name, rows, columns, match)
    finally:
        close = getattr(rows, "close", None)  # a generator holds the file open
        if close is not None:
            close()


def _search(
    name: str, records: Iterator[Record], columns: Mapping[str, str], match: Match
) -> Search:
    first: list[str] | None = None
    best: tuple[tuple[int, int], list[str]] | None = None
    for number, cells in records:
        if number > HEADER_SEARCH_ROWS:
            break
        if not any(cells):
            continue
        headers = trimmed_headers(cells)
        normalised = [normalise_header(h) for h in headers]
        _check_not_own_file(name, normalised)
        first = first or headers
        found = _required_found(headers, normalised, columns, match)
        if found == 2:
            return Search((number, cells), first, headers)
        # Closest: the most required fields, then the most cells (a title row has one).
        score = found, sum(1 for h in headers if h)
        if best is None or score > best[0]:
            best = score, headers
    return Search(None, first, best[1] if best else None)


def header_layout(
    name: str, search: Search, columns: Mapping[str, str], match: Match
) -> tuple[int, Layout]:
    """The header's row and layout, or the missing-column message for the closest row."""
    if search.header is not None:
        number, cells = search.header
        return number, build_layout(name, cells, columns, match)
    if search.best is None:
        raise InputFileError(msg.EMPTY.format(name=name))
    build_layout(name, search.best, columns, match)  # raises: names what is missing
    raise AssertionError("a row without the required columns made a layout")


def no_sheet_qualifies(
    name: str, searches: Mapping[str, Search], columns: Mapping[str, str], match: Match
) -> InputFileError:
    """Every sheet with its first row, and what to map, when none has the required columns."""
    listing = "; ".join(
        f"{sheet!r}: {', '.join(h for h in s.first if h) if s.first else '(empty)'}"
        for sheet, s in searches.items()
    )
    required = fields_for(match)[:2]
    missing = ", ".join(required)
    hints = (suggest(s.best, required, match) for s in searches.values() if s.best)
    hint = next((h for h in hints if h), "")
    return InputFileError(
        msg.NO_SHEET_QUALIFIES.format(
            name=name, missing=missing, rows=HEADER_SEARCH_ROWS, sheets=listing, hint=hint
        )
    )
