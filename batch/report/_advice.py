"""What a person should do about a row, in plain English: one table, keyed by error code.

The flow it supports is the README's: fix the rows in the original file and run that file
again. Rows already paid are skipped, so a rerun never pays twice.
"""

from __future__ import annotations

from batch.rows import RowStatus

RERUN = "then run the original file again (paid rows are skipped)"

WHAT_TO_DO: dict[str, str] = {
    # refused by paybatch before sending
    "BLANK_ORDER_ID": f"Fill in the order ID in the original file, {RERUN}.",
    "BLANK_TOKEN": f"Fill in the payment source token in the original file, {RERUN}.",
    "CARD_NUMBER_TOKEN": (
        "A card number was pasted where the token belongs: delete it from the file now, "
        f"put the payment source token instead, {RERUN}."
    ),
    "INVALID_JSON": f"Correct the JSON named in error_detail in the original file, {RERUN}.",
    "TOO_LONG": f"Shorten the value named in error_detail in the original file, {RERUN}.",
    "TOO_MANY_CELLS": (
        "A value holds an unquoted separator, so the columns shifted: quote or fix that "
        f"value in the original file, {RERUN}."
    ),
    "DUPLICATE_ORDER": (
        "The order appears on an earlier row, which is the one sent. Delete this row, or "
        "the earlier one if this is the right payment (before any run pays it)."
    ),
    # refused by the API
    "VALIDATION_ERROR": f"Correct the field named in error_detail in the original file, {RERUN}.",
    "RECORD_NOT_FOUND": (
        "No such order in this organization (or outside the credential's market): check the "
        f"order ID, {RERUN}."
    ),
    "UNAUTHORIZED": "The credentials were refused: check CL_CLIENT_ID and CL_CLIENT_SECRET.",
    "FORBIDDEN": "The credential may not create payments here: check its role and scope.",
    "ORDER_NOT_PENDING": (
        "The order is no longer waiting for payment (placed, cancelled or paid elsewhere): ask "
        "the order's owner; remove the row if no payment is due."
    ),
    "NO_EXTERNAL_PAYMENT_METHOD": (
        "The order's market has no external payment method: ask a Commerce Layer admin to "
        f"add one, {RERUN}."
    ),
    "ORDER_HAS_PAYMENT_SOURCE": (
        "The order already had another payment source; nothing was replaced. Check the order "
        "in the dashboard before doing anything else."
    ),
    # found after the fact: money may be wrong, a person must look
    "UNKNOWN_OUTCOME": (
        "The answer was lost, so the payment may exist. Do not pay by hand: run the original "
        "file again and paybatch looks it up before any resend."
    ),
    "TOKEN_CHANGED": (
        "The order was paid earlier with another token than this row now has; nothing was "
        "resent. If the earlier payment is wrong, correct it in the dashboard."
    ),
    "TOKEN_MISMATCH": (
        "The payment found on the server carries another token than this row. Check the order "
        "in the dashboard."
    ),
    "SOURCE_REPLACED": (
        "The order's payment source was replaced by this payment. Check the order in the "
        "dashboard and tell whoever owned the previous payment source."
    ),
    "EXTRA_PAYMENTS": (
        "The order has more than one external payment. Check the order in the dashboard and "
        "remove the extra payment if it is a duplicate."
    ),
}

NOT_REACHED = f"Not sent (the run stopped before this row): {RERUN}."
TRANSPORT = f"The API did not answer properly (network, timeout or server error): {RERUN} later."
FALLBACK = f"Read error_detail; fix the row in the original file if it names a value, {RERUN}."


def what_to_do(status: RowStatus, error_code: str) -> str:
    """The advice for one row of the error file."""
    advice = WHAT_TO_DO.get(error_code)
    if advice is not None:
        return advice
    if not error_code and status is RowStatus.NOT_ATTEMPTED:
        return NOT_REACHED
    if error_code.endswith(("_ERROR", "_TIMEOUT")):
        # Transport failures by exception name (CONNECT_ERROR, READ_TIMEOUT, ...) and the
        # server's own errors (INTERNAL_SERVER_ERROR).
        return TRANSPORT
    return FALLBACK


# The rows the error file lists: everything not paid, and any paid row flagged for a person.
NEEDS_A_PERSON = frozenset(
    {RowStatus.FAILED, RowStatus.INVALID, RowStatus.DUPLICATE, RowStatus.NOT_ATTEMPTED}
)


def needs_a_person(status: RowStatus, error_code: str) -> bool:
    """True for the rows of the error file."""
    return status in NEEDS_A_PERSON or bool(error_code)
