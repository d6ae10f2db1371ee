"""Header normalisation, the `--column` mapping, and which cell feeds which field."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from batch.errors import InputFileError, UsageError
from batch.inputs import _messages as msg
from batch.rows import KNOWN_COLUMNS

Match = Literal["id", "number"]
_SEPARATORS = re.compile(r"[\W_]+")
# Other spellings of a field's normalised name ("Order #" is already `order_number`).
_ALIASES = {"order_no": "order_number", "order_num": "order_number", "order_nr": "order_number"}
OTHER_FIELDS = ("payment_source_token", "reference", "reference_origin", "metadata", "options")


def normalise_header(text: str) -> str:
    """`" Order ID "` → `order_id`, `Payment-Source Token` → `payment_source_token`."""
    folded = text.replace("\ufeff", "").replace("#", " number ").strip().casefold()
    name = _SEPARATORS.sub("_", folded).strip("_")
    return _ALIASES.get(name, name)


def key_field(match: Match) -> str:
    """The column that names the order: `order_id`, or `order_number` with --match number."""
    return "order_number" if match == "number" else "order_id"


def fields_for(match: Match) -> tuple[str, ...]:
    """The fields read for this kind of match; the other key is carried as an extra column."""
    return (key_field(match), *OTHER_FIELDS)


def _known_target(column: str, where: str) -> str:
    target = normalise_header(column)
    if target not in KNOWN_COLUMNS:
        known = ", ".join(KNOWN_COLUMNS)
        raise UsageError(f"{where}: unknown column {column.strip()!r} (known: {known})")
    return target


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1].strip()
    return text


def parse_column_mapping(items: Iterable[str]) -> dict[str, str]:
    """Parse `--column` values like `order_id="Order Ref"` into {API column: header}."""
    mapping: dict[str, str] = {}
    for item in items:
        target, sep, header = item.partition("=")
        header = _unquote(header)
        if not sep or not target.strip() or not header:
            raise UsageError(
                f'--column {item!r}: expected COLUMN=HEADER, e.g. order_id="Order Ref"'
            )
        column = _known_target(target, f"--column {item!r}")
        if column in mapping:
            raise UsageError(f"--column: {column} is mapped more than once")
        mapping[column] = header
    return mapping


def check_mapping(columns: Mapping[str, str], match: Match = "id") -> dict[str, str]:
    """Validate an explicit {API column: header} mapping given as a Python mapping."""
    if match not in ("id", "number"):
        raise UsageError(f"match: expected 'id' or 'number', not {match!r}")
    checked: dict[str, str] = {}
    for column, header in columns.items():
        target = _known_target(column, "columns")
        if target in checked:
            raise UsageError(f"columns: {target} is mapped more than once")
        if target not in fields_for(match):
            wanted = "--match number" if target == "order_number" else "--match id (the default)"
            raise UsageError(f"--column {target}=...: only used with {wanted}")
        checked[target] = header.strip()
    return checked


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each field sits in a record."""

    headers: list[str]  # original headers, trimmed, trailing blank ones dropped
    known: dict[str, int]  # API column → cell index
    extra: list[tuple[str, int]]  # (key in InputRow.extra, cell index), in input order
    key: str  # order_id or order_number
    delimiters: int  # delimiters in the header line (raw cells - 1), for text files

    @property
    def width(self) -> int:
        return len(self.headers)


def _extra_key(header: str, index: int, taken: set[str]) -> str:
    # A blank header is named by its position; a repeated one gets " (2)", " (3)"...
    base = header or f"(column {index + 1})"
    key, n = base, 1
    while key in taken:
        n += 1
        key = f"{base} ({n})"
    taken.add(key)
    return key


def trimmed_headers(cells: Sequence[str]) -> list[str]:
    """Header cells trimmed (and of a stray BOM), trailing blank ones dropped."""
    headers = [cell.replace("\ufeff", "").strip() for cell in cells]
    while headers and not headers[-1]:
        headers.pop()
    return headers


def _found(headers: Sequence[str]) -> str:
    return ", ".join(h for h in headers if h) or "no headers"


def _matches(headers: Sequence[str], normalised: Sequence[str], wanted: str) -> list[int]:
    # An exact header wins; otherwise match after normalisation.
    hits = [i for i, h in enumerate(headers) if h == wanted]
    if not hits:
        hits = [i for i, n in enumerate(normalised) if n and n == normalise_header(wanted)]
    return hits


def build_layout(
    name: str, cells: Sequence[str], columns: Mapping[str, str], match: Match = "id"
) -> Layout:
    """Match the header row against the API columns; raise `InputFileError` when unusable."""
    headers = trimmed_headers(cells)
    found = _found(headers)
    normalised = [normalise_header(h) for h in headers]
    fields = fields_for(match)
    known: dict[str, int] = {}
    for column, wanted in columns.items():
        hits = _matches(headers, normalised, wanted)
        if not hits:
            raise InputFileError(
                msg.MAPPED_NOT_FOUND.format(name=name, header=wanted, column=column, found=found)
            )
        if len(hits) > 1:
            clash = ", ".join(headers[i] for i in hits)
            raise InputFileError(msg.DUPLICATE_COLUMN.format(name=name, column=column, found=clash))
        known[column] = hits[0]
    claimed = set(known.values())
    by_name: dict[str, list[int]] = {}
    for i, n in enumerate(normalised):
        # A column whose name matches a mapped field is not that field: the mapping decides.
        if i not in claimed and n in fields and n not in columns:
            by_name.setdefault(n, []).append(i)
    for column, hits in by_name.items():
        if len(hits) > 1:
            clash = ", ".join(headers[i] for i in hits)
            raise InputFileError(msg.DUPLICATE_COLUMN.format(name=name, column=column, found=clash))
        known[column] = hits[0]
    missing = [c for c in fields[:2] if c not in known]
    if missing:
        hint = suggest(headers, missing, match)
        raise InputFileError(
            msg.MISSING_COLUMNS.format(
                name=name, missing=", ".join(missing), found=found, hint=hint
            )
        )
    used = set(known.values())
    taken: set[str] = set()
    extra = [(_extra_key(h, i, taken), i) for i, h in enumerate(headers) if i not in used]
    return Layout(
        headers=headers,
        known=known,
        extra=extra,
        key=fields[0],
        delimiters=len(cells) - 1,
    )


# Normalised headers that likely hold a field under another name, for the suggestion.
_CLOSE = {
    "order_id": ("order", "order_ref", "order_reference", "orderid", "id", "order_code"),
    "order_number": ("order", "number", "order_id", "orderid", "order_ref"),
    "payment_source_token": (
        "token",
        "payment_token",
        "source_token",
        "card_token",
        "payment_source",
        "payment_method_token",
        "psp_token",
        "token_id",
    ),
}


def _close_header(field: str, headers: Sequence[str]) -> str | None:
    for header in headers:
        name = normalise_header(header)
        if name and (name in _CLOSE[field] or (field in name and name != field)):
            return header
    return None


def suggest(headers: Sequence[str], missing: Iterable[str], match: Match) -> str:
    """`; if "Token" holds the payment_source_token, add --column payment_source_token="Token"`."""
    hints = []
    for field in missing:
        numbers = [h for h in headers if normalise_header(h) == "order_number"]
        close = _close_header(field, headers)
        if field == "order_id" and numbers:
            hints.append(
                f'"{numbers[0]}" looks like order numbers: add --match number'
                f' (or --column order_id="{numbers[0]}" if it holds order IDs)'
            )
        elif close is not None:
            hints.append(f'if "{close}" holds the {field}, add --column {field}="{close}"')
    return "".join(f"; {hint}" for hint in hints)
