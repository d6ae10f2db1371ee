"""The state file: transitions, plans, durability of 'sending', and group commit."""

import asyncio
import sqlite3
from pathlib import Path

import pytest

from batch.errors import StateError
from batch.journal import AsyncJournal, Journal, Plan, RowState, plan_for
from batch.rows import InputRow, token_hash


def row(order: str = "ORD1", token: str = "tok_abcdefgh", n: int = 2) -> InputRow:
    return InputRow(row=n, order_id=order, payment_source_token=token)


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    j = Journal.open(tmp_path / "state.sqlite")
    yield j
    j.close()


def admit(j: Journal, r: InputRow, run: str = "run1") -> Plan:
    plans: list[Plan] = []
    j.transaction(
        [lambda jj: plans.append(jj.admit(r, run_id=run, input_sha256="sha", now=1.0)[0])]
    )
    return plans[0]


def test_wal_and_full_sync(journal: Journal) -> None:
    db = sqlite3.connect(journal.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_new_row_is_sent_then_created_is_skipped(journal: Journal) -> None:
    r = row()
    assert admit(journal, r) is Plan.SEND
    journal.transaction([lambda j: j.mark_sending(r, run_id="run1", now=2.0, timeout=30.0)])
    record = journal.get("ORD1")
    assert record is not None
    assert record.state is RowState.SENDING
    assert record.sent_at == 2.0
    journal.transaction(
        [
            lambda j: j.mark_created(
                order_id="ORD1",
                payment_id="PAY1",
                http_status=201,
                created_run_id="run1",
                attempts_delta=1,
                now=3.0,
            )
        ]
    )
    record = journal.get("ORD1")
    assert record is not None
    assert (record.state, record.payment_id, record.attempts) == (RowState.CREATED, "PAY1", 1)
    assert admit(journal, r, run="run2") is Plan.SKIP


def test_sending_left_by_a_crash_must_be_settled(journal: Journal) -> None:
    r = row()
    admit(journal, r)
    journal.transaction([lambda j: j.mark_sending(r, run_id="run1", now=2.0, timeout=30.0)])
    # run1 dies here; run2 must look it up before any resend, even with a new payload.
    assert admit(journal, row(token="tok_changed__"), run="run2") is Plan.SETTLE


def test_permanent_failure_is_retried_only_when_the_payload_changed(journal: Journal) -> None:
    r = row()
    admit(journal, r)
    journal.transaction(
        [
            lambda j: j.mark_sending(r, run_id="run1", now=2.0, timeout=30.0),
            lambda j: j.mark_outcome(
                order_id="ORD1",
                state=RowState.FAILED,
                http_status=422,
                error_code="VALIDATION_ERROR",
                error_detail="bad",
                attempts_delta=1,
                now=3.0,
            ),
        ]
    )
    assert admit(journal, r, run="run2") is Plan.SKIP
    fixed = row(token="tok_fixed_by_finance")
    assert admit(journal, fixed, run="run3") is Plan.SEND
    record = journal.get("ORD1")
    assert record is not None
    assert record.state is RowState.PENDING
    assert record.token_sha256 == token_hash("tok_fixed_by_finance")


def test_the_raw_token_is_never_stored(journal: Journal) -> None:
    r = row(token="tok_SECRET_VALUE_123")
    admit(journal, r)
    journal.transaction([lambda j: j.mark_sending(r, run_id="run1", now=2.0, timeout=30.0)])
    journal.close()
    blob = b"".join(p.read_bytes() for p in journal.path.parent.iterdir() if p.is_file())
    assert b"tok_SECRET_VALUE_123" not in blob
    assert token_hash("tok_SECRET_VALUE_123").encode() in blob


def test_illegal_transition_raises_and_rolls_back(journal: Journal) -> None:
    r = row()
    admit(journal, r)
    journal.transaction([lambda j: j.mark_refused(order_id="ORD1", code="C", detail="d", now=1.0)])
    with pytest.raises(StateError, match="illegal state change retryable → created"):
        journal.transaction(
            [
                lambda j: j.mark_created(
                    order_id="ORD1",
                    payment_id="X",
                    http_status=201,
                    created_run_id="r",
                    attempts_delta=1,
                    now=1.0,
                )
            ]
        )
    record = journal.get("ORD1")
    assert record is not None
    assert record.state is RowState.RETRYABLE


def test_plan_table() -> None:
    assert plan_for(None, row()) is Plan.SEND


def test_not_a_state_file(tmp_path: Path) -> None:
    bogus = tmp_path / "state.sqlite"
    bogus.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match="not a usable paybatch state file"):
        Journal.open(bogus)


def test_group_commit_batches_concurrent_writers(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "s.sqlite")
    rows = [row(order=f"O{i}") for i in range(200)]
    for r in rows:
        admit(journal, r)
    commits = 0
    original = journal.transaction

    def counting(ops):  # type: ignore[no-untyped-def]
        nonlocal commits
        commits += 1
        original(ops)

    journal.transaction = counting  # type: ignore[method-assign]
    aj = AsyncJournal(journal)

    async def main() -> None:
        await asyncio.gather(
            *(
                aj.write(lambda j, r=r: j.mark_sending(r, run_id="run1", now=1.0, timeout=30.0))
                for r in rows
            )
        )

    asyncio.run(main())
    aj.close()
    check = Journal.open(tmp_path / "s.sqlite")
    assert {r.state for r in check.records()} == {RowState.SENDING}
    check.close()
    assert commits < len(rows) / 4, commits
