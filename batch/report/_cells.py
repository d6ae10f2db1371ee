"""Cell values: one place decides what a report cell contains, for CSV and XLSX alike."""

from __future__ import annotations

from collections.abc import Sequence

from batch.report._advice import what_to_do
from batch.rows import KNOWN_COLUMNS, REPORT_COLUMNS, ReportRow, TypedCell, mask_token

# Leading characters that make Excel, LibreOffice or Sheets read a cell as a formula
# (CWE-1236; the OWASP "CSV Injection" list).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

# The error file: what went wrong and what to do, then the input's own columns.
ERROR_COLUMNS = ("row", "order_id", "status", "error_code", "error_detail", "what_to_do")

Cell = str | int | None
"""A report cell: text (already neutralised), a number we produced, or empty.

A `TypedCell` (an XLSX input's number or date) is never neutralised: its text came from a
number or a date, so it cannot be a formula, and the XLSX writes its value.
"""


def neutralise(text: str) -> str:
    """Prefix `'` to text a spreadsheet would read as a formula; other text is unchanged.

    This is deliberately blunt: a negative-looking order id such as "-123" is text in
    the report and also comes out as "'-123". A report that is safe to open beats one
    that round-trips a rare id shape.
    """
    text = str(text)  # a plain str: a TypedCell stops here, so key fields stay text
    if text.startswith(FORMULA_TRIGGERS):
        return "'" + text
    return text


def _names(fixed: Sequence[str], carried: Sequence[str]) -> list[str]:
    # An input column whose name clashes with one of ours is shown as `input.<name>`, so no
    # header appears twice.
    names = list(fixed)
    for name in carried:
        names.append(f"input.{name}" if name in fixed else name)
    return [neutralise(name) for name in names]


def header(carried: Sequence[str]) -> list[str]:
    """The report's header: the fixed columns, then the input's columns in file order."""
    return _names(REPORT_COLUMNS, carried)


def error_header(carried: Sequence[str]) -> list[str]:
    """The error file's header: ERROR_COLUMNS, the masked token, then the input's columns."""
    return _names((*ERROR_COLUMNS, "payment_source_token"), carried)


def _input_cells(row: ReportRow, carried: Sequence[str]) -> list[Cell]:
    token = mask_token(row.payment_source_token) if row.payment_source_token else ""
    values: list[Cell] = [token]
    for name in carried:
        value = row.extra.get(name, "")
        # The API's own fields (reference, metadata...) stay text even when typed as numbers.
        if isinstance(value, TypedCell) and name not in KNOWN_COLUMNS:
            values.append(value)
        else:
            values.append(neutralise(value))
    return values


def cells(row: ReportRow, carried: Sequence[str]) -> list[Cell]:
    """One report line, in `header()` order; the token is masked here and only here."""
    fixed: list[Cell] = [
        row.row,
        neutralise(row.order_id),
        neutralise(str(row.status)),
        neutralise(row.external_payment_id),
        row.http_status,
        neutralise(row.error_code),
        neutralise(row.error_detail),
        row.attempts,
    ]
    return fixed + _input_cells(row, carried)


def error_cells(row: ReportRow, carried: Sequence[str]) -> list[Cell]:
    """One error-file line, in `error_header()` order."""
    fixed: list[Cell] = [
        row.row,
        neutralise(row.order_id),
        neutralise(str(row.status)),
        neutralise(row.error_code),
        neutralise(row.error_detail),
        what_to_do(row.status, row.error_code),
    ]
    return fixed + _input_cells(row, carried)
