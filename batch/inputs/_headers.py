"""Header normalisation, the `--column` mapping, and which cell feeds which field."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from batch.errors import InputFileError, UsageError
from batch.inputs import _messages as msg
from batch.rows import KNOWN_COLUMNS, REQUIRED_COLUMNS

_SEPARATORS = re.compile(r"[\W_]+")


def normalise_header(text: str) -> str:
    """`" Order ID "` → `order_id`, `Payment-Source Token` → `payment_source_token`."""
    folded = text.replace("\ufeff", "").strip().casefold()
    return _SEPARATORS.sub("_", folded).strip("_")


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


def check_mapping(columns: Mapping[str, str]) -> dict[str, str]:
    """Validate an explicit {API column: header} mapping given as a Python mapping."""
    checked: dict[str, str] = {}
    for column, header in columns.items():
        target = _known_target(column, "columns")
        if target in checked:
            raise UsageError(f"columns: {target} is mapped more than once")
        checked[target] = header.strip()
    return checked


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each field sits in a record."""

    headers: list[str]  # original headers, trimmed, trailing blank ones dropped
    known: dict[str, int]  # API column → cell index
    extra: list[tuple[str, int]]  # (key in InputRow.extra, cell index), in input order

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


def build_layout(name: str, cells: Sequence[str], columns: Mapping[str, str]) -> Layout:
    """Match the header row against the API columns; raise `InputFileError` when unusable."""
    headers = [cell.replace("\ufeff", "").strip() for cell in cells]
    while headers and not headers[-1]:
        headers.pop()
    found = ", ".join(h for h in headers if h) or "no headers"
    normalised = [normalise_header(h) for h in headers]
    known: dict[str, int] = {}
    for column, wanted in columns.items():
        # An exact header wins; otherwise match after normalisation.
        hits = [i for i, h in enumerate(headers) if h == wanted]
        if not hits:
            hits = [i for i, n in enumerate(normalised) if n and n == normalise_header(wanted)]
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
        if i not in claimed and n in KNOWN_COLUMNS and n not in columns:
            by_name.setdefault(n, []).append(i)
    for column, hits in by_name.items():
        if len(hits) > 1:
            clash = ", ".join(headers[i] for i in hits)
            raise InputFileError(msg.DUPLICATE_COLUMN.format(name=name, column=column, found=clash))
        known[column] = hits[0]
    missing = [c for c in REQUIRED_COLUMNS if c not in known]
    if missing:
        raise InputFileError(
            msg.MISSING_COLUMNS.format(name=name, missing=", ".join(missing), found=found)
        )
    used = set(known.values())
    taken: set[str] = set()
    extra = [(_extra_key(h, i, taken), i) for i, h in enumerate(headers) if i not in used]
    return Layout(headers=headers, known=known, extra=extra)
