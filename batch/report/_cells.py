"""Cell values: one place decides what a report cell contains, for CSV and XLSX alike."""

from __future__ import annotations

from collections.abc import Sequence

from batch.rows import REPORT_COLUMNS, ReportRow, mask_token

# Leading characters that make Excel, LibreOffice or Sheets read a cell as a formula
# (CWE-1236; the OWASP "CSV Injection" list).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

Cell = str | int | None
"""A report cell: text (already neutralised), a number we produced, or empty."""


def neutralise(text: str) -> str:
    """Prefix `'` to text a spreadsheet would read as a formula; other text is unchanged.

    This is deliberately blunt: a negative-looking order id such as "-123" is text in
    the report and also comes out as "'-123". A report that is safe to open beats one
    that round-trips a rare id shape.
    """
    if text.startswith(FORMULA_TRIGGERS):
        return "'" + text
    return text


def header(extra_headers: Sequence[str]) -> list[str]:
    """The report's header: the fixed columns, then the input's extra columns.

    An extra column whose name clashes with a report column is shown as `input.<name>`,
    so no header appears twice.
    """
    names = list(REPORT_COLUMNS)
    for name in extra_headers:
        names.append(f"input.{name}" if name in REPORT_COLUMNS else name)
    return [neutralise(name) for name in names]


def cells(row: ReportRow, extra_headers: Sequence[str]) -> list[Cell]:
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
        mask_token(row.payment_source_token),
    ]
    return fixed + [neutralise(row.extra.get(name, "")) for name in extra_headers]
