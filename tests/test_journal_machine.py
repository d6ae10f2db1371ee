"""A hypothesis state machine drives the journal the way the runner does, against a model server.

The model server creates a payment or not, and the answer reaches the journal or is lost,
or the process dies between the durable "sending" mark and the answer. Runs start over
(a new process, the same state file) at any point. Whatever happens:

- the server never holds two payments for an order (a resend only follows a lookup);
- the journal never says pending/failed/retryable while the server holds a payment;
- a created record names the server's one payment, and the report says so;
- a new run is planned SEND only when the server holds no payment for the order;
- an illegal transition raises StateError and changes nothing.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from batch.errors import StateError
from batch.journal import TRANSITIONS, Journal, Plan, Record, RowState
from batch.outcomes import TOKEN_CHANGED, UNKNOWN_OUTCOME, report_row
from batch.rows import InputRow, RowStatus, token_hash

ORDERS = ("ORD00001", "ORD00002", "ORD00003")
TOKENS = ("tok_first_aaaa", "tok_fixed_bbbb")

# What one POST can come to, as seen by the runner: (server creates it?, what the runner records).
SENDS = {
    "created": (True, RowState.CREATED),
    "lost_after_create": (True, RowState.UNKNOWN),  # dropped or late answer
    "lost_before_create": (False, RowState.UNKNOWN),  # 5xx, dropped before processing
    "permanent": (False, RowState.FAILED),  # 422 and friends
    "refused_retry": (False, RowState.PENDING),  # 423/connect error, retried later
    "refused_gave_up": (False, RowState.RETRYABLE),  # backoff exhausted
    "throttled": (False, RowState.PENDING),  # 429: not an attempt
    "killed_after_create": (True, RowState.SENDING),  # kill -9 with the answer on the way
    "killed_before_create": (False, RowState.SENDING),  # kill -9 right after the mark
}


class ExactlyOnceMachine(RuleBasedStateMachine):
    """The runner's protocol over a real Journal file; the model server is a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="journal-machine-"))
        self.path = self.dir / "state.sqlite"
        self.journal = self.open()
        self.server: dict[str, list[tuple[str, str, str]]] = {}  # order → (id, token, run)
        self.run = 1
        self.rows: dict[str, InputRow] = {}  # the rows of the current run, by order
        self.minted = 0

    def open(self) -> Journal:
        journal = Journal.open(self.path)
        # Durability against power loss is SQLite's job, not this test's: skip the fsyncs
        # so hypothesis can try many sequences. Closing and reopening still goes to the file.
        journal._db.execute("PRAGMA synchronous=OFF")
        return journal

    @property
    def run_id(self) -> str:
        return f"run{self.run}"

    def teardown(self) -> None:
        self.journal.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def record(self, order: str) -> Record | None:
        return self.journal.get(order)

    def state_of(self, order: str) -> RowState | None:
        found = self.record(order)
        return None if found is None else found.state

    def new_process(self) -> None:
        """The process ends (cleanly or killed); the next run reopens the same file."""
        self.journal.close()
        self.journal = self.open()
        self.run += 1
        self.rows = {}

    # -- rules ------------------------------------------------------------------------

    @rule()
    def start_next_run(self) -> None:
        self.new_process()

    @rule(order=st.sampled_from(ORDERS), token=st.sampled_from(TOKENS))
    def admit(self, order: str, token: str) -> None:
        if order in self.rows:
            return  # a repeated order in one file is refused as duplicate, never admitted
        row = InputRow(row=2 + ORDERS.index(order), order_id=order, payment_source_token=token)
        before = self.record(order)
        result: list[tuple[Plan, Record | None]] = []
        self.journal.transaction(
            [lambda j: result.append(j.admit(row, run_id=self.run_id, input_sha256="s", now=1.0))]
        )
        plan, existing = result[0]
        assert existing == before
        self.rows[order] = row
        if plan is Plan.SEND:
            assert not self.server.get(order), "planned a send for an order that has a payment"
            assert self.state_of(order) is RowState.PENDING
        elif plan is Plan.SETTLE:
            assert before is not None
            assert before.state in (RowState.SENDING, RowState.UNKNOWN)
        else:
            assert before is not None
            same_payload = before.fingerprint == row.fingerprint()
            assert before.state is RowState.CREATED or (
                before.state is RowState.FAILED and same_payload
            )

    @precondition(lambda self: any(self.state_of(o) is RowState.PENDING for o in self.rows))
    @rule(data=st.data(), outcome=st.sampled_from(sorted(SENDS)))
    def send(self, data: st.DataObject, outcome: str) -> None:
        pending = [o for o in self.rows if self.state_of(o) is RowState.PENDING]
        order = data.draw(st.sampled_from(pending))
        row = self.rows[order]
        self.journal.transaction(
            [lambda j: j.mark_sending(row, run_id=self.run_id, now=2.0, timeout=30.0)]
        )
        creates, recorded = SENDS[outcome]
        payment_id = ""
        if creates:
            self.minted += 1
            payment_id = f"PAY{self.minted:04d}"
            self.server.setdefault(order, []).append(
                (payment_id, row.payment_source_token, self.run_id)
            )
        if recorded is RowState.SENDING:
            self.new_process()  # killed: nothing after the mark reaches the journal
        elif recorded is RowState.CREATED:
            self.journal.transaction(
                [
                    lambda j: j.mark_created(
                        order_id=order,
                        payment_id=payment_id,
                        http_status=201,
                        created_run_id=self.run_id,
                        attempts_delta=1,
                        now=3.0,
                    )
                ]
            )
        else:
            attempts = 0 if outcome == "throttled" else 1
            self.journal.transaction(
                [
                    lambda j: j.mark_outcome(
                        order_id=order,
                        state=recorded,
                        http_status=None,
                        error_code=outcome.upper(),
                        error_detail="",
                        attempts_delta=attempts,
                        now=3.0,
                    )
                ]
            )

    @precondition(
        lambda self: any(
            self.state_of(o) in (RowState.SENDING, RowState.UNKNOWN) for o in self.rows
        )
    )
    @rule(data=st.data(), exhausted=st.booleans())
    def settle(self, data: st.DataObject, exhausted: bool) -> None:
        """Look the order up, as the settler does, before anything is sent again."""
        doubtful = [
            o for o in self.rows if self.state_of(o) in (RowState.SENDING, RowState.UNKNOWN)
        ]
        order = data.draw(st.sampled_from(doubtful))
        record = self.record(order)
        assert record is not None
        found = self.server.get(order, [])
        if found:
            payment_id, token, _ = found[0]
            flag = "" if token_hash(token) == record.token_sha256 else "TOKEN_MISMATCH"
            op = lambda j: j.mark_created(  # noqa: E731
                order_id=order,
                payment_id=payment_id,
                http_status=record.http_status,
                created_run_id=record.sent_run_id or self.run_id,
                attempts_delta=0,
                now=4.0,
                flag=flag,
            )
        else:
            state = RowState.RETRYABLE if exhausted else RowState.PENDING
            op = lambda j: j.mark_outcome(  # noqa: E731
                order_id=order,
                state=state,
                http_status=record.http_status,
                error_code="",
                error_detail="",
                attempts_delta=0,
                now=4.0,
            )
        self.journal.transaction([op])

    @precondition(lambda self: any(self.record(o) is not None for o in ORDERS))
    @rule(data=st.data())
    def illegal_transition_changes_nothing(self, data: st.DataObject) -> None:
        known = [o for o in ORDERS if self.record(o) is not None]
        order = data.draw(st.sampled_from(known))
        before = self.record(order)
        assert before is not None
        forbidden = sorted(set(RowState) - TRANSITIONS[before.state])
        if not forbidden:
            return
        target = data.draw(st.sampled_from(forbidden))
        row = InputRow(row=2, order_id=order, payment_source_token=TOKENS[0])

        def move(j: Journal) -> None:
            if target is RowState.SENDING:
                j.mark_sending(row, run_id=self.run_id, now=9.0, timeout=30.0)
            elif target is RowState.CREATED:
                j.mark_created(
                    order_id=order,
                    payment_id="BOGUS",
                    http_status=201,
                    created_run_id=self.run_id,
                    attempts_delta=1,
                    now=9.0,
                )
            else:
                j.mark_outcome(
                    order_id=order,
                    state=target,
                    http_status=500,
                    error_code="X",
                    error_detail="",
                    attempts_delta=1,
                    now=9.0,
                )

        with pytest.raises(StateError, match="illegal state change"):
            self.journal.transaction([move])
        assert self.record(order) == before

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def at_most_one_payment_per_order(self) -> None:
        for order, payments in self.server.items():
            assert len(payments) <= 1, f"{order}: {payments}"

    @invariant()
    def journal_never_forgets_a_payment(self) -> None:
        for order in ORDERS:
            record = self.record(order)
            payments = self.server.get(order, [])
            if record is None:
                assert not payments
            elif record.state is RowState.CREATED:
                assert [p[0] for p in payments] == [record.payment_id]
            elif record.state not in (RowState.SENDING, RowState.UNKNOWN):
                assert not payments, f"{order} is {record.state} but the server has {payments}"

    @invariant()
    def report_matches_server(self) -> None:
        for order, row in self.rows.items():
            record = self.record(order)
            line = report_row(row, record, run_id=self.run_id)
            payments = self.server.get(order, [])
            assert record is not None
            if record.state is RowState.CREATED:
                payment_id, token, created_in = payments[0]
                mine = created_in == self.run_id
                assert line.status is (RowStatus.CREATED if mine else RowStatus.ALREADY_CREATED)
                assert line.external_payment_id == payment_id
                if token != row.payment_source_token:
                    assert line.error_code == TOKEN_CHANGED
            elif record.state in (RowState.SENDING, RowState.UNKNOWN):
                assert line.status is RowStatus.FAILED
                assert line.error_code == UNKNOWN_OUTCOME
            elif record.state is RowState.PENDING:
                assert line.status is RowStatus.NOT_ATTEMPTED
            else:
                # A failure of this very payload is failed; an older payload's is not this row's.
                same_payload = record.fingerprint == row.fingerprint()
                assert line.status is (
                    RowStatus.FAILED if same_payload else RowStatus.NOT_ATTEMPTED
                )
                assert line.external_payment_id == ""


ExactlyOnceMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestExactlyOnce = ExactlyOnceMachine.TestCase
