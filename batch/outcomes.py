"""From what the journal knows about an order to the report's line for an input row."""

from __future__ import annotations

from dataclasses import replace

from batch.journal import Record, RowState
from batch.policy import VERDICTS
from batch.rows import InputRow, ReportRow, RowStatus, token_hash

UNKNOWN_OUTCOME = "UNKNOWN_OUTCOME"
TOKEN_CHANGED = "TOKEN_CHANGED"

# A created row can carry one of these: the payment exists, but a person must look.
FLAG_DETAILS = {
    "SOURCE_REPLACED": "this row's payment exists, but the order's active payment source is "
    "another one; not sent again",
    "EXTRA_PAYMENTS": "the server has more than one external payment for this order; "
    "not sent again",
    "TOKEN_MISMATCH": "found on the server by lookup, but with a different payment source token",
}
_STATUS_OF_CODE = {v.code: v.status for v in VERDICTS.values() if v.code and v.status}


def report_row(row: InputRow, record: Record | None, *, run_id: str) -> ReportRow:
    """The status of one input row at the end of run `run_id`."""
    line = ReportRow(
        row=row.row,
        order_id=row.order_id,
        status=RowStatus.NOT_ATTEMPTED,
        payment_source_token=row.payment_source_token,
        extra=row.carried,
    )
    refused = row.status_if_refused
    if refused is not None and row.problem is not None:
        return replace(
            line, status=refused, error_code=row.problem.code, error_detail=row.problem.detail
        )
    if record is None:
        return line
    line = replace(
        line,
        http_status=record.http_status,
        attempts=record.attempts,
        external_payment_id=record.payment_id,
    )
    if record.state is RowState.CREATED:
        mine = record.created_run_id == run_id
        code = record.flag
        detail = (record.error_detail or FLAG_DETAILS.get(code, "")) if code else ""
        if not code and record.token_sha256 != token_hash(row.payment_source_token):
            code = TOKEN_CHANGED
            detail = "this row's token differs from the one the order was paid with; not resent"
        status = RowStatus.CREATED if mine else RowStatus.ALREADY_CREATED
        if _STATUS_OF_CODE.get(code) is RowStatus.FAILED:
            status = RowStatus.FAILED  # the verdict table: someone must sort this order out
        return replace(line, status=status, error_code=code, error_detail=detail)
    if record.state in (RowState.SENDING, RowState.UNKNOWN):
        cause = f"{record.error_code}: {record.error_detail}; " if record.error_code else ""
        return replace(
            line,
            status=RowStatus.FAILED,
            error_code=UNKNOWN_OUTCOME,
            error_detail=cause
            + "the payment may exist; the next run looks it up before any resend",
        )
    if record.state is RowState.PENDING or record.fingerprint != row.fingerprint():
        return replace(line, status=RowStatus.NOT_ATTEMPTED, http_status=None, attempts=0)
    detail = record.error_detail
    if record.state is RowState.RETRYABLE:
        detail = f"{detail}; retried on the next run" if detail else "retried on the next run"
    return replace(line, status=RowStatus.FAILED, error_code=record.error_code, error_detail=detail)


def state_row(record: Record, *, run_id: str) -> ReportRow:
    """A report line from the state file alone, when the input can no longer be read."""
    line = ReportRow(
        row=record.row_number,
        order_id=record.order_id,
        status=RowStatus.NOT_ATTEMPTED,
        payment_source_token="",  # never stored; only its hash is
        external_payment_id=record.payment_id,
        http_status=record.http_status,
        attempts=record.attempts,
        error_code=record.error_code,
        error_detail=record.error_detail,
    )
    if record.state is RowState.CREATED:
        mine = record.created_run_id == run_id
        status = RowStatus.CREATED if mine else RowStatus.ALREADY_CREATED
        return replace(line, status=status, error_code=record.flag, error_detail="")
    if record.state in (RowState.SENDING, RowState.UNKNOWN):
        detail = "the payment may exist; the next run looks it up before any resend"
        return replace(
            line, status=RowStatus.FAILED, error_code=UNKNOWN_OUTCOME, error_detail=detail
        )
    if record.state is RowState.PENDING:
        return replace(line, error_code="", error_detail="")
    return replace(line, status=RowStatus.FAILED)
