"""Typed rows: what the input yields, and what the report receives."""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

# The columns the API knows; everything else in the input is carried through untouched.
KNOWN_COLUMNS = (
    "order_id",
    "order_number",  # the key instead of order_id with `--match number`
    "payment_source_token",
    "reference",
    "reference_origin",
    "metadata",
    "options",
)
REQUIRED_COLUMNS = ("order_id", "payment_source_token")
# The known columns a file may also have; the report carries them as typed, under these names.
OPTIONAL_COLUMNS = tuple(c for c in KNOWN_COLUMNS if c not in REQUIRED_COLUMNS)


class TypedCell(str):
    """The text of a spreadsheet cell that held a number or a date (XLSX input only).

    It is a `str` everywhere (checks, journal and fingerprints see the text); only the
    report reads `.value`, to write the cell back as a number or a date.
    """

    value: int | float | datetime | date

    def __new__(cls, text: str, value: int | float | datetime | date) -> TypedCell:
        cell = super().__new__(cls, text)
        cell.value = value
        return cell


class RowStatus(enum.StrEnum):
    """The status column of the reconciliation report."""

    CREATED = "created"
    ALREADY_CREATED = "already_created"
    FAILED = "failed"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    NOT_ATTEMPTED = "not_attempted"
    SKIPPED = "skipped"  # not an order: a header row repeated inside the data
    VALID = "valid"  # only in `paybatch validate` reports


# Problem code that inputs uses for an order repeated in the same file.
DUPLICATE_ORDER = "DUPLICATE_ORDER"
# ...and for the header row repeated inside the data (two exports pasted together).
REPEATED_HEADER = "REPEATED_HEADER"


# Problems the server check found before any send (--match number: the number is unknown,
# or names several orders): the row failed, it is not invalid input.
SERVER_REFUSALS = frozenset({"RECORD_NOT_FOUND", "AMBIGUOUS_ORDER_NUMBER"})


@dataclass(frozen=True, slots=True)
class RowProblem:
    """Why a row is not sent: a code and a plain-English detail naming the column."""

    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class InputRow:
    """One data row of the input file, typed and checked."""

    row: int  # spreadsheet row number: header = 1, first data row = 2
    order_id: str  # "" with `--match number`
    payment_source_token: str
    reference: str | None = None
    reference_origin: str | None = None
    metadata: Mapping[str, Any] | None = None
    options: Mapping[str, Any] | None = None
    extra: Mapping[str, str] = field(default_factory=dict)  # other columns by original header
    problem: RowProblem | None = None
    order_number: str = ""  # the key with `--match number`, else ""
    # The cells of OPTIONAL_COLUMNS as typed, for the report (the fields above are parsed).
    mapped: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def carried(self) -> dict[str, str]:
        """Every cell but order_id and the token, for the report: mapped fields by API name."""
        return {**self.extra, **self.mapped}

    @property
    def status_if_refused(self) -> RowStatus | None:
        """`invalid`, `duplicate`, `skipped` or `failed` for a row that must not be sent."""
        if self.problem is None:
            return None
        if self.problem.code == DUPLICATE_ORDER:
            return RowStatus.DUPLICATE
        if self.problem.code == REPEATED_HEADER:
            return RowStatus.SKIPPED
        if self.problem.code in SERVER_REFUSALS:
            return RowStatus.FAILED
        return RowStatus.INVALID

    def attributes(self) -> dict[str, Any]:
        """The JSON:API attributes, with optional ones only when given."""
        attrs: dict[str, Any] = {"payment_source_token": self.payment_source_token}
        for name in ("options", "reference", "reference_origin", "metadata"):
            value = getattr(self, name)
            if value is not None:
                attrs[name] = value
        return attrs

    def fingerprint(self) -> str:
        """A SHA-256 of the payload sent for this row; the raw token never leaves this hash."""
        doc: dict[str, Any] = {"order_id": self.order_id, "attributes": self.attributes()}
        if self.order_number:  # only then: fingerprints of rows keyed by id stay as they were
            doc["order_number"] = self.order_number
        blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def token_hash(token: str) -> str:
    """A SHA-256 of a payment-source token, to compare tokens without storing them."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def mask_token(token: str) -> str:
    """Show only the last 4 characters of a token; short tokens are hidden entirely."""
    if len(token) <= 4:
        return "****"
    return "****" + token[-4:]


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One line of the reconciliation report; the writer masks the token."""

    row: int
    order_id: str
    status: RowStatus
    payment_source_token: str
    external_payment_id: str = ""
    http_status: int | None = None
    error_code: str = ""
    error_detail: str = ""
    attempts: int = 0
    extra: Mapping[str, str] = field(default_factory=dict)


REPORT_COLUMNS = (
    "row",
    "order_id",
    "status",
    "external_payment_id",
    "http_status",
    "error_code",
    "error_detail",
    "attempts",
    "payment_source_token",
)
