"""Row checks: turn one record's cells into a typed `InputRow`, with its problem if any."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from batch.inputs._headers import Layout
from batch.rows import DUPLICATE_ORDER, OPTIONAL_COLUMNS, InputRow, RowProblem

BLANK_ORDER_ID = "BLANK_ORDER_ID"
BLANK_TOKEN = "BLANK_TOKEN"
CARD_NUMBER_TOKEN = "CARD_NUMBER_TOKEN"
INVALID_JSON = "INVALID_JSON"
TOO_LONG = "TOO_LONG"
TOO_MANY_CELLS = "TOO_MANY_CELLS"

# Commerce Layer ids and tokens are short; 255 is the usual string column limit, so a longer
# value is a paste accident, not data.
MAX_TEXT_CHARS = 255
# metadata/options are JSON objects kept on the payment; 64 KiB (UTF-8) is ample for notes.
MAX_JSON_BYTES = 64 * 1024

TEXT_FIELDS = ("order_id", "payment_source_token", "reference", "reference_origin")
JSON_FIELDS = ("metadata", "options")

# 13–19 digits, optionally grouped by spaces or dashes: a PAN pasted where a token belongs.
_CARD_NUMBER = re.compile(r"\d(?:[\s-]*\d){12,18}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


# One decoder for all rows: json.loads() with a hook builds a new decoder per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _json_object(column: str, text: str) -> tuple[dict[str, Any] | None, RowProblem | None]:
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        # exc.msg names the syntax error without quoting the cell.
        detail = f"{column} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        return None, RowProblem(INVALID_JSON, detail)
    except ValueError as exc:
        return None, RowProblem(INVALID_JSON, f"{column} is not valid JSON ({exc})")
    except RecursionError:
        return None, RowProblem(INVALID_JSON, f"{column} is not valid JSON (nested too deeply)")
    if not isinstance(value, dict):
        kind = _JSON_KINDS.get(type(value), type(value).__name__)
        detail = f"{column} must be a JSON object {{...}}, not {kind}"
        return None, RowProblem(INVALID_JSON, detail)
    return value, None


_JSON_KINDS = {
    list: "a list",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true/false",
    type(None): "null",
}


def _overflow_problem(cells: Sequence[str], width: int) -> RowProblem | None:
    for index in range(width, len(cells)):
        if cells[index]:
            # Usually an unquoted delimiter inside a value: the columns after it have shifted.
            detail = (
                f"column {index + 1} has a value but the header has only {width} columns"
                " (a value may contain an unquoted delimiter)"
            )
            return RowProblem(TOO_MANY_CELLS, detail)
    return None


class RowChecker:
    """Turns records into `InputRow`s for one header layout; problems in a fixed order."""

    def __init__(self, layout: Layout) -> None:
        self._width = layout.width
        self._known = list(layout.known.items())
        self._extra = list(layout.extra)
        self._text = [c for c in TEXT_FIELDS if c in layout.known]
        self._json = [c for c in JSON_FIELDS if c in layout.known]

    def check(self, number: int, cells: Sequence[str]) -> InputRow:
        """Build the row for spreadsheet row `number`; `problem` is its first failing check."""
        size = len(cells)
        values = {c: (cells[i] if i < size else "") for c, i in self._known}
        extra = {key: (cells[i] if i < size else "") for key, i in self._extra}
        parsed: dict[str, dict[str, Any] | None] = {"metadata": None, "options": None}
        problem = _overflow_problem(cells, self._width) if size > self._width else None
        order_id = values["order_id"]
        token = values["payment_source_token"]
        if problem is None and not order_id:
            problem = RowProblem(BLANK_ORDER_ID, "order_id is blank")
        if problem is None and not token:
            problem = RowProblem(BLANK_TOKEN, "payment_source_token is blank")
        if problem is None and token[0].isdigit() and _CARD_NUMBER.fullmatch(token):
            detail = "payment_source_token looks like a payment card number; refused, never sent"
            problem = RowProblem(CARD_NUMBER_TOKEN, detail)
        for column in self._text:
            length = len(values[column])
            if problem is None and length > MAX_TEXT_CHARS:
                detail = f"{column} is {length} characters long; the limit is {MAX_TEXT_CHARS}"
                problem = RowProblem(TOO_LONG, detail)
        for column in self._json:
            text = values[column]
            if not text:
                continue
            length = len(text.encode("utf-8"))
            if length > MAX_JSON_BYTES:
                detail = f"{column} is {length} bytes long; the limit is {MAX_JSON_BYTES}"
                problem = problem or RowProblem(TOO_LONG, detail)
                continue
            parsed[column], found = _json_object(column, text)
            problem = problem or found
        return InputRow(
            row=number,
            order_id=order_id,
            payment_source_token=token,
            reference=values.get("reference") or None,
            reference_origin=values.get("reference_origin") or None,
            metadata=parsed["metadata"],
            options=parsed["options"],
            extra=extra,
            problem=problem,
            mapped={c: values[c] for c in OPTIONAL_COLUMNS if c in values},
        )


class DuplicateOrders:
    """Flags an order_id seen on an earlier row (valid or not); the first stays as it was."""

    def __init__(self) -> None:
        self._first: dict[str, int] = {}

    def check(self, row: InputRow) -> InputRow:
        if not row.order_id:
            return row
        first = self._first.setdefault(row.order_id, row.row)
        if first == row.row or row.problem is not None:
            return row
        detail = f"order_id {row.order_id} already on row {first}"
        return replace(row, problem=RowProblem(DUPLICATE_ORDER, detail))
