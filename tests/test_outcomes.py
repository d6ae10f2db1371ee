"""From journal records to report statuses."""

from dataclasses import replace

from batch.journal import Record, RowState
from batch.outcomes import report_row
from batch.rows import DUPLICATE_ORDER, InputRow, RowProblem, RowStatus, token_hash

ROW = InputRow(row=7, order_id="O1", payment_source_token="tok_12345678", extra={"Notes": "x"})
RECORD = Record(
    order_id="O1",
    state=RowState.CREATED,
    payment_id="PAY",
    http_status=201,
    error_code="",
    error_detail="",
    attempts=1,
    fingerprint=ROW.fingerprint(),
    token_sha256=token_hash(ROW.payment_source_token),
    row_number=7,
    run_id="now",
    sent_run_id="now",
    created_run_id="now",
    sent_at=1.0,
    flag="",
)


def status(row: InputRow, record: Record | None) -> RowStatus:
    return report_row(row, record, run_id="now").status


def test_created_in_this_run_or_before() -> None:
    line = report_row(ROW, RECORD, run_id="now")
    assert (line.status, line.external_payment_id, line.row, line.extra) == (
        RowStatus.CREATED,
        "PAY",
        7,
        {"Notes": "x"},
    )
    assert status(ROW, replace(RECORD, created_run_id="earlier")) is RowStatus.ALREADY_CREATED


def test_refused_rows() -> None:
    bad = replace(ROW, problem=RowProblem("BLANK_TOKEN", "payment_source_token is blank"))
    assert status(bad, None) is RowStatus.INVALID
    dup = replace(ROW, problem=RowProblem(DUPLICATE_ORDER, "order_id O1 already on row 2"))
    assert status(dup, RECORD) is RowStatus.DUPLICATE


def test_not_reached_rows_are_not_attempted() -> None:
    assert status(ROW, None) is RowStatus.NOT_ATTEMPTED
    assert status(ROW, replace(RECORD, state=RowState.PENDING)) is RowStatus.NOT_ATTEMPTED
    # A failure recorded for an older payload says nothing about this row's payload.
    stale = replace(RECORD, state=RowState.FAILED, fingerprint="old")
    assert status(ROW, stale) is RowStatus.NOT_ATTEMPTED


def test_failures_and_unknowns() -> None:
    failed = replace(RECORD, state=RowState.FAILED, error_code="VALIDATION_ERROR")
    assert report_row(ROW, failed, run_id="now").error_code == "VALIDATION_ERROR"
    unknown = report_row(ROW, replace(RECORD, state=RowState.SENDING), run_id="now")
    assert (unknown.status, unknown.error_code) == (RowStatus.FAILED, "UNKNOWN_OUTCOME")
    retry = report_row(ROW, replace(RECORD, state=RowState.RETRYABLE), run_id="now")
    assert retry.status is RowStatus.FAILED
    assert "next run" in retry.error_detail


def test_token_changed_after_payment_is_flagged_not_resent() -> None:
    changed = replace(ROW, payment_source_token="tok_other_999")
    line = report_row(changed, replace(RECORD, created_run_id="earlier"), run_id="now")
    assert (line.status, line.error_code) == (RowStatus.ALREADY_CREATED, "TOKEN_CHANGED")
