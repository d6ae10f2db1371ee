"""Row checks: turn one record's cells into a typed `InputRow`, with its problem if any.

Problems are found in a fixed order and the first one is kept: a repeated header row,
a cell the reader flagged (a rounded number, a formula without a value), too many cells,
blank key fields, the key-field values, then lengths, free text and JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from batch.inputs._headers import Layout
from batch.inputs._values import (
    KEY_PLAIN,
    TOKEN_PLAIN,
    key_problem,
    masked_token_problem,
    text_problem,
)
from batch.rows import DUPLICATE_ORDER, OPTIONAL_COLUMNS, REPEATED_HEADER, InputRow, RowProblem

BLANK_ORDER_ID = "BLANK_ORDER_ID"
BLANK_ORDER_NUMBER = "BLANK_ORDER_NUMBER"
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

TEXT_FIELDS = ("order_id", "order_number", "payment_source_token", "reference", "reference_origin")
FREE_TEXT_FIELDS = ("reference", "reference_origin")
JSON_FIELDS = ("metadata", "options")
TOKEN = "payment_source_token"

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
        self._key = layout.key
        self._key_index = layout.known[layout.key]
        self._token_index = layout.known[TOKEN]
        # The header's own texts, casefolded: the same row again inside the data is skipped.
        self._header_key = layout.headers[self._key_index].casefold()
        self._header_key_length = len(layout.headers[self._key_index])
        self._header_token = layout.headers[self._token_index].casefold()
        self._blank_key = BLANK_ORDER_NUMBER if layout.key == "order_number" else BLANK_ORDER_ID
        self._text = [c for c in TEXT_FIELDS if c in layout.known]
        self._free_text = [c for c in FREE_TEXT_FIELDS if c in layout.known]
        self._json = [c for c in JSON_FIELDS if c in layout.known]

    def _repeated_header(self, cells: Sequence[str]) -> bool:
        size = len(cells)
        key = cells[self._key_index] if self._key_index < size else ""
        token = cells[self._token_index] if self._token_index < size else ""
        return key.casefold() == self._header_key and token.casefold() == self._header_token

    def _key_problem(self, key: str, token: str) -> RowProblem | None:
        if not key:
            return RowProblem(self._blank_key, f"{self._key} is blank")
        if not token:
            return RowProblem(BLANK_TOKEN, "payment_source_token is blank")
        if token[0].isdigit() and _CARD_NUMBER.fullmatch(token):
            detail = "payment_source_token looks like a payment card number; refused, never sent"
            return RowProblem(CARD_NUMBER_TOKEN, detail)
        if KEY_PLAIN.fullmatch(key) and TOKEN_PLAIN.fullmatch(token):
            return None
        found = key_problem(self._key, key, comma=True) or key_problem(TOKEN, token, comma=False)
        return found or masked_token_problem(TOKEN, token)

    def check(
        self, number: int, cells: Sequence[str], flagged: RowProblem | None = None
    ) -> InputRow:
        """Build the row for spreadsheet row `number`; `problem` is its first failing check.

        `flagged` is a problem the reader found in a cell (a rounded number, a formula).
        """
        size = len(cells)
        values = {c: (cells[i] if i < size else "") for c, i in self._known}
        extra = {key: (cells[i] if i < size else "") for key, i in self._extra}
        parsed: dict[str, dict[str, Any] | None] = {"metadata": None, "options": None}
        key = values[self._key]
        token = values[TOKEN]
        problem = None
        if len(key) == self._header_key_length and self._repeated_header(cells):
            detail = "the header row again (two exports pasted together?); skipped, not an order"
            problem = RowProblem(REPEATED_HEADER, detail)
        problem = problem or flagged
        if problem is None and size > self._width:
            problem = _overflow_problem(cells, self._width)
        problem = problem or self._key_problem(key, token)
        for column in self._text:
            length = len(values[column])
            if problem is None and length > MAX_TEXT_CHARS:
                detail = f"{column} is {length} characters long; the limit is {MAX_TEXT_CHARS}"
                problem = RowProblem(TOO_LONG, detail)
        for column in self._free_text:
            if problem is None and values[column]:
                problem = text_problem(column, values[column])
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
        by_number = self._key == "order_number"
        return InputRow(
            row=number,
            order_id="" if by_number else key,
            order_number=key if by_number else "",
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
    """Flags a key (order id or number) seen on an earlier row; the first stays as it was."""

    def __init__(self, key: str = "order_id") -> None:
        self._key = key
        self._first: dict[str, int] = {}

    def check(self, row: InputRow) -> InputRow:
        key = row.order_number if self._key == "order_number" else row.order_id
        if not key or (row.problem is not None and row.problem.code == REPEATED_HEADER):
            return row
        first = self._first.setdefault(key, row.row)
        if first == row.row or row.problem is not None:
            return row
        detail = f"{self._key} {key} already on row {first}"
        return replace(row, problem=RowProblem(DUPLICATE_ORDER, detail))
