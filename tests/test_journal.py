"""The state file: transitions, plans, durability of 'sending', and group commit."""

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

from batch import statedb
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


# The schema of paybatch 0.1 (schema version 1), as its files were written.
V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY, pid INTEGER NOT NULL, started_at TEXT NOT NULL,
    finished_at TEXT, input_path TEXT NOT NULL, input_sha256 TEXT NOT NULL, exit_code INTEGER
);
CREATE TABLE payments (
    order_id TEXT PRIMARY KEY, state TEXT NOT NULL, payment_id TEXT, http_status INTEGER,
    error_code TEXT NOT NULL DEFAULT '', error_detail TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0, fingerprint TEXT NOT NULL, token_sha256 TEXT NOT NULL,
    input_sha256 TEXT NOT NULL, row_number INTEGER NOT NULL, run_id TEXT NOT NULL,
    sent_run_id TEXT, created_run_id TEXT, sent_at REAL, flag TEXT NOT NULL DEFAULT '',
    first_seen_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE INDEX payments_state ON payments (state);
INSERT INTO runs VALUES ('old-run', 4242, '2025-06-01T00:00:00Z', NULL, 'in.csv', 'sha', NULL);
INSERT INTO payments (order_id, state, payment_id, http_status, attempts, fingerprint,
    token_sha256, input_sha256, row_number, run_id, created_run_id, first_seen_at, updated_at)
    VALUES ('ORD1', 'created', 'PAY1', 201, 1, 'fp', 'tsha', 'sha', 2, 'old-run', 'old-run', 1, 1);
INSERT INTO meta VALUES ('bound_to', 'test@acme.commercelayer.io');
"""


def v1_file(path: Path, *, version: str | None = "1") -> Path:
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    if version is not None:
        db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (version,))
    db.commit()
    db.close()
    return path


def schema_version(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        return str(db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])
    finally:
        db.close()


@pytest.mark.parametrize("version", ["1", None], ids=["v1", "v1-without-version-row"])
def test_an_earlier_version_is_migrated_in_place(tmp_path: Path, version: str | None) -> None:
    path = v1_file(tmp_path / "old.sqlite", version=version)
    journal = Journal.open(path)
    try:
        record = journal.get("ORD1")
        assert record is not None
        assert (record.state, record.payment_id) == (RowState.CREATED, "PAY1")
        assert journal.bound_to() == "test@acme.commercelayer.io"
        assert admit(journal, row(), run="new-run") is Plan.SKIP
        journal.begin_run(
            "new-run", pid=1, host="here", started_at="T", input_path="i", input_sha256="s"
        )
    finally:
        journal.close()
    assert schema_version(path) == str(statedb.SCHEMA_VERSION)
    runs = statedb.unfinished_runs(path)
    assert [(r.run_id, r.pid, r.host) for r in runs] == [
        ("new-run", 1, "here"),
        ("old-run", 4242, ""),
    ]
    Journal.open(path).close()  # opening again is a no-op


def test_every_version_has_a_migration_step() -> None:
    assert sorted(statedb.MIGRATIONS) == list(range(1, statedb.SCHEMA_VERSION))


def test_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = v1_file(tmp_path / "future.sqlite", version=str(statedb.SCHEMA_VERSION + 1))
    with pytest.raises(StateError, match="written by a newer paybatch"):
        Journal.open(path)


def test_another_programs_sqlite_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "contacts.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE contacts (name TEXT)")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="not a paybatch state file"):
        Journal.open(path)
    db = sqlite3.connect(path)
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    db.close()
    assert tables == {"contacts"}


def test_a_0_byte_file_is_a_new_state_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite"
    path.touch()
    journal = Journal.open(path)
    try:
        assert admit(journal, row()) is Plan.SEND
        assert journal.bound_to() is None
    finally:
        journal.close()
    assert schema_version(path) == str(statedb.SCHEMA_VERSION)


def test_a_copy_without_its_wal_opens_with_what_was_checkpointed(tmp_path: Path) -> None:
    live = Journal.open(tmp_path / "live.sqlite")
    admit(live, row("ORD1"))
    live._db.execute("PRAGMA wal_checkpoint(FULL)")
    admit(live, row("ORD2"))  # only in live.sqlite-wal
    copy = tmp_path / "copy.sqlite"
    copy.write_bytes(live.path.read_bytes())  # copied while the run is going: no -wal
    live.close()
    assert not (tmp_path / "copy.sqlite-wal").exists()
    journal = Journal.open(copy)
    try:
        assert {r.order_id for r in journal.records()} == {"ORD1"}
        assert admit(journal, row("ORD2")) is Plan.SEND
    finally:
        journal.close()


def test_an_unwritable_state_directory_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateError, match="cannot create the directory"):
        Journal.open(blocker / "sub" / "state.sqlite")


def test_a_hard_linked_state_file_opens_and_shares_its_rows(tmp_path: Path) -> None:
    first = Journal.open(tmp_path / "a.sqlite")
    admit(first, row("ORD1"))
    first.close()
    os.link(tmp_path / "a.sqlite", tmp_path / "b.sqlite")
    journal = Journal.open(tmp_path / "b.sqlite")
    try:
        assert admit(journal, row("ORD1"), run="run2") is Plan.SEND  # pending: sent again
        assert journal.get("ORD1") is not None
    finally:
        journal.close()


def test_runs_of_this_host_left_open_by_a_crash_are_ended(journal: Journal) -> None:
    for run, host in [("dead", "here"), ("other-machine", "there"), ("from-v1", "")]:
        journal.begin_run(run, pid=1, host=host, started_at="T", input_path="i", input_sha256="s")
    journal.begin_run("done", pid=2, host="here", started_at="T", input_path="i", input_sha256="s")
    journal.finish_run("done", finished_at="T2", exit_code=0)
    assert journal.end_abandoned_runs(host="here", finished_at="T3") == 2
    assert [r.run_id for r in statedb.unfinished_runs(journal.path)] == ["other-machine"]
    db = sqlite3.connect(journal.path)
    ended = dict(db.execute("SELECT run_id, exit_code FROM runs WHERE finished_at = 'T3'"))
    db.close()
    assert ended == {"dead": None, "from-v1": None}  # no exit code: they died
