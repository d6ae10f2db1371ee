"""The durable state of every order: what was sent, what came back, what is still unknown.

One SQLite file in WAL mode with synchronous=FULL. The key is `order_id` (one external
payment per order is the invariant). A row's state moves

    pending → sending → created | failed (permanent) | retryable | unknown

and `sending` is committed *before* the POST goes out, so a crash at any moment leaves
either a row that was never sent (`pending`) or one whose outcome must be settled by
lookup (`sending`/`unknown`). Raw payment tokens are never stored: only a SHA-256 of
the token and a fingerprint of the whole payload.
"""

from __future__ import annotations

import asyncio
import enum
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from batch import statedb
from batch.errors import StateError
from batch.rows import InputRow, token_hash

_T = TypeVar("_T")


class RowState(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    CREATED = "created"
    FAILED = "failed"
    RETRYABLE = "retryable"
    UNKNOWN = "unknown"


# The transitions the journal allows; anything else is a bug and raises.
TRANSITIONS: dict[RowState, frozenset[RowState]] = {
    # CREATED and RETRYABLE straight from pending: the preflight found the order paid,
    # or refused it, before any POST.
    RowState.PENDING: frozenset(
        {RowState.SENDING, RowState.PENDING, RowState.CREATED, RowState.RETRYABLE}
    ),
    RowState.SENDING: frozenset(
        {
            RowState.PENDING,  # 429 or never sent: not an attempt
            RowState.CREATED,
            RowState.FAILED,
            RowState.RETRYABLE,
            RowState.UNKNOWN,
        }
    ),
    RowState.UNKNOWN: frozenset(
        {RowState.CREATED, RowState.PENDING, RowState.RETRYABLE, RowState.UNKNOWN}
    ),
    RowState.RETRYABLE: frozenset({RowState.PENDING}),
    RowState.FAILED: frozenset({RowState.PENDING, RowState.RETRYABLE}),
    RowState.CREATED: frozenset(),
}


class Plan(enum.Enum):
    """What the runner must do with a valid row, given what the journal knows."""

    SEND = "send"  # never sent, or safe to send again
    SETTLE = "settle"  # may exist on the server: look it up before any send
    SKIP = "skip"  # created already, or a permanent failure of the same payload


@dataclass(frozen=True, slots=True)
class Record:
    order_id: str
    state: RowState
    payment_id: str
    http_status: int | None
    error_code: str
    error_detail: str
    attempts: int
    fingerprint: str
    token_sha256: str
    row_number: int
    run_id: str
    sent_run_id: str
    created_run_id: str
    sent_at: float | None
    flag: str
    sent_timeout: float | None = None  # the --timeout in force when it was sent


_COLUMNS = (
    "order_id, state, payment_id, http_status, error_code, error_detail, attempts, "
    "fingerprint, token_sha256, row_number, run_id, sent_run_id, created_run_id, sent_at, flag, "
    "sent_timeout"
)


def _record(values: Sequence[Any]) -> Record:
    (order_id, state, payment_id, http_status, code, detail, attempts, fingerprint) = values[:8]
    (token_sha, row_number, run_id, sent_run_id, created_run_id, sent_at, flag) = values[8:15]
    return Record(
        order_id,
        RowState(state),
        payment_id or "",
        http_status,
        code,
        detail,
        attempts,
        fingerprint,
        token_sha,
        row_number,
        run_id,
        sent_run_id or "",
        created_run_id or "",
        sent_at,
        flag,
        values[15],
    )


@dataclass(frozen=True, slots=True)
class Resolution:
    """An order number's order ID on the server, or the code and detail of why there is none."""

    order_id: str
    code: str = ""
    detail: str = ""


def binding(api_host: str, environment: str) -> str:
    return f"{environment}@{api_host}"


def plan_for(record: Record | None, row: InputRow) -> Plan:
    """The decision table for a valid row (see the module docstring)."""
    if record is None:
        return Plan.SEND
    if record.state is RowState.CREATED:
        return Plan.SKIP
    if record.state in (RowState.SENDING, RowState.UNKNOWN):
        return Plan.SETTLE
    if record.state is RowState.FAILED and record.fingerprint == row.fingerprint():
        return Plan.SKIP
    return Plan.SEND


class Journal:
    """Synchronous access to the state file; one connection, used from one thread at a time."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path

    @classmethod
    def open(cls, path: Path) -> Journal:
        """Open (or create) the state file; see `statedb.connect`."""
        return cls(statedb.connect(path), path)

    def close(self) -> None:
        self._db.close()

    def transaction(self, ops: Iterable[Callable[[Journal], None]]) -> None:
        """Apply several writes in one durable commit.

        A disk that is full, read-only or failing is a `StateError` naming the file: the
        run stops with one line (exit 2), and nothing it could not record is sent.
        """
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for op in ops:
                    op(self)
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise StateError(f"{self.path}: cannot write the state file ({exc})") from None

    def bind(self, *, api_host: str, environment: str) -> None:
        """Tie the state file to one organization and environment; refuse any other.

        A payment created in one (say, a test rehearsal) must never make a run against
        another believe the order is paid.
        """
        wanted = binding(api_host, environment)
        bound = self.bound_to()
        if bound is None:
            self._db.execute("INSERT INTO meta VALUES ('bound_to', ?)", (wanted,))
        elif bound != wanted:
            raise StateError(
                f"{self.path} holds the payments of {bound}, not {wanted}; "
                "use a separate --state for each organization and environment"
            )

    def bound_to(self) -> str | None:
        """The `environment@host` this state file belongs to, once a run has started."""
        row = self._db.execute("SELECT value FROM meta WHERE key='bound_to'").fetchone()
        return None if row is None else str(row[0])

    # runs

    def begin_run(
        self,
        run_id: str,
        *,
        pid: int,
        started_at: str,
        input_path: str,
        input_sha256: str,
        host: str = "",
    ) -> None:
        self._db.execute(
            "INSERT INTO runs (run_id, pid, host, started_at, input_path, input_sha256) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, pid, host, started_at, input_path, input_sha256),
        )

    def finish_run(self, run_id: str, *, finished_at: str, exit_code: int) -> None:
        self._db.execute(
            "UPDATE runs SET finished_at = ?, exit_code = ? WHERE run_id = ?",
            (finished_at, exit_code, run_id),
        )

    def end_abandoned_runs(self, *, host: str, finished_at: str) -> int:
        """Mark the runs of `host` that never finished as ended, with no exit code.

        Call it holding the lock: on this host no other run can be alive, so these died
        (kill -9, power cut), and the lock's next refusal must not name them as holders.
        """
        cursor = self._db.execute(
            "UPDATE runs SET finished_at = ? WHERE finished_at IS NULL AND host IN (?, '')",
            (finished_at, host),
        )
        return cursor.rowcount

    # reads

    def get(self, order_id: str) -> Record | None:
        found = self.get_many([order_id])
        return found.get(order_id)

    def get_many(self, order_ids: Sequence[str]) -> dict[str, Record]:
        result: dict[str, Record] = {}
        for start in range(0, len(order_ids), 500):
            chunk = list(order_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            query = f"SELECT {_COLUMNS} FROM payments WHERE order_id IN ({marks})"  # noqa: S608
            for values in self._db.execute(query, chunk):
                record = _record(values)
                result[record.order_id] = record
        return result

    def records(self, states: Iterable[RowState] | None = None) -> list[Record]:
        query = f"SELECT {_COLUMNS} FROM payments"  # noqa: S608
        if states is None:
            return [_record(v) for v in self._db.execute(query + " ORDER BY order_id")]
        wanted = [s.value for s in states]
        marks = ",".join("?" * len(wanted))
        rows = self._db.execute(f"{query} WHERE state IN ({marks}) ORDER BY order_id", wanted)
        return [_record(v) for v in rows]

    def numbers(self, numbers: Sequence[str]) -> dict[str, Resolution]:
        """What these order numbers resolved to on the server (--match number)."""
        found: dict[str, Resolution] = {}
        for start in range(0, len(numbers), 500):
            chunk = list(numbers[start : start + 500])
            marks = ",".join("?" * len(chunk))
            query = (
                "SELECT number, order_id, error_code, error_detail FROM order_numbers "  # noqa: S608
                f"WHERE number IN ({marks})"
            )
            for number, order_id, code, detail in self._db.execute(query, chunk):
                found[number] = Resolution(order_id, code, detail)
        return found

    # writes (call inside `transaction`)

    def resolve(self, number: str, resolution: Resolution, *, now: float) -> None:
        """Record what an order number resolved to: an order ID, or why none."""
        self._db.execute(
            "INSERT INTO order_numbers (number, order_id, error_code, error_detail, updated_at) "
            "VALUES (?,?,?,?,?) ON CONFLICT (number) DO UPDATE SET order_id=excluded.order_id, "
            "error_code=excluded.error_code, error_detail=excluded.error_detail, "
            "updated_at=excluded.updated_at",
            (number, resolution.order_id, resolution.code, resolution.detail, now),
        )

    def admit(
        self, row: InputRow, *, run_id: str, input_sha256: str, now: float
    ) -> tuple[Plan, Record | None]:
        """Record a valid row of this run's input and decide what to do with it."""
        existing = self.get(row.order_id)
        plan = plan_for(existing, row)
        if existing is None:
            self._db.execute(
                "INSERT INTO payments (order_id, state, fingerprint, token_sha256, input_sha256, "
                "row_number, run_id, first_seen_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    row.order_id,
                    RowState.PENDING.value,
                    row.fingerprint(),
                    token_hash(row.payment_source_token),
                    input_sha256,
                    row.row,
                    run_id,
                    now,
                    now,
                ),
            )
        elif plan is Plan.SEND:
            # A retry, or a corrected payload: start over from pending with this row's payload.
            self._move(existing, RowState.PENDING)
            self._db.execute(
                "UPDATE payments SET state=?, fingerprint=?, token_sha256=?, input_sha256=?, "
                "row_number=?, run_id=?, updated_at=? WHERE order_id=?",
                (
                    RowState.PENDING.value,
                    row.fingerprint(),
                    token_hash(row.payment_source_token),
                    input_sha256,
                    row.row,
                    run_id,
                    now,
                    row.order_id,
                ),
            )
        elif plan is Plan.SETTLE:
            self._db.execute(
                "UPDATE payments SET run_id=?, updated_at=? WHERE order_id=?",
                (run_id, now, row.order_id),
            )
        return plan, existing

    def mark_sending(self, row: InputRow, *, run_id: str, now: float, timeout: float) -> None:
        """The intent to POST, committed before the POST goes out, with the timeout in force."""
        self._update(
            row.order_id,
            RowState.SENDING,
            fingerprint=row.fingerprint(),
            token_sha256=token_hash(row.payment_source_token),
            sent_run_id=run_id,
            sent_at=now,
            sent_timeout=timeout,
            updated_at=now,
        )

    def mark_found(
        self, *, order_id: str, payment_id: str, flag: str, detail: str, now: float
    ) -> None:
        """The preflight found this row's payment on the server before any POST of ours."""
        self._update(
            order_id,
            RowState.CREATED,
            payment_id=payment_id,
            error_code="",
            error_detail=detail,
            created_run_id="",
            flag=flag,
            updated_at=now,
        )

    def mark_refused(self, *, order_id: str, code: str, detail: str, now: float) -> None:
        """The preflight refused the row (the order is not in a state to pay): not sent.

        Retryable: the next run looks at the server again, so fixing the order is enough.
        """
        self._update(
            order_id,
            RowState.RETRYABLE,
            http_status=None,
            error_code=code,
            error_detail=detail,
            updated_at=now,
        )

    def mark_created(
        self,
        *,
        order_id: str,
        payment_id: str,
        http_status: int | None,
        created_run_id: str,
        attempts_delta: int,
        now: float,
        flag: str = "",
        detail: str = "",
    ) -> None:
        self._update(
            order_id,
            RowState.CREATED,
            payment_id=payment_id,
            http_status=http_status,
            error_code="",
            error_detail=detail,
            created_run_id=created_run_id,
            flag=flag,
            updated_at=now,
            attempts_delta=attempts_delta,
        )

    def mark_outcome(
        self,
        *,
        order_id: str,
        state: RowState,
        http_status: int | None,
        error_code: str,
        error_detail: str,
        attempts_delta: int,
        now: float,
    ) -> None:
        """A failure, a retryable refusal, an unknown outcome or a 429 (back to pending)."""
        self._update(
            order_id,
            state,
            http_status=http_status,
            error_code=error_code,
            error_detail=error_detail,
            updated_at=now,
            attempts_delta=attempts_delta,
        )

    def reopen_failed(self, *, order_ids: list[str]) -> None:
        """Permanent failures that turned out to be the configuration's: retry next run."""
        for start in range(0, len(order_ids), 500):
            chunk = order_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            self._db.execute(
                f"UPDATE payments SET state = ? WHERE state = ? AND order_id IN ({marks})",  # noqa: S608
                (RowState.RETRYABLE.value, RowState.FAILED.value, *chunk),
            )

    def _move(self, record: Record, state: RowState) -> None:
        if state not in TRANSITIONS[record.state]:
            raise StateError(
                f"order {record.order_id}: illegal state change {record.state} → {state}"
            )

    def _update(
        self, order_id: str, state: RowState, *, attempts_delta: int = 0, **values: Any
    ) -> None:
        # One statement on the hot path: the allowed predecessors are part of the WHERE, and
        # only a miss pays for reading the row back to say what was wrong.
        sources = _SOURCES[state]
        names = ["state", *values]
        sets = ", ".join(f"{name}=?" for name in names)
        marks = ",".join("?" * len(sources))
        cursor = self._db.execute(
            f"UPDATE payments SET {sets}, attempts = attempts + ? "  # noqa: S608
            f"WHERE order_id = ? AND state IN ({marks})",
            (state.value, *values.values(), attempts_delta, order_id, *sources),
        )
        if cursor.rowcount == 1:
            return
        record = self.get(order_id)
        if record is None:
            raise StateError(f"order {order_id}: not in the state file")
        self._move(record, state)
        raise StateError(f"order {order_id}: update to {state} did not apply")


# For each state, the states it may be entered from (TRANSITIONS read backwards).
_SOURCES: dict[RowState, tuple[str, ...]] = {
    target: tuple(s.value for s, allowed in TRANSITIONS.items() if target in allowed)
    for target in RowState
}


class AsyncJournal:
    """The journal on its own thread, with group commit: many writers share one fsync."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._pending: list[tuple[Callable[[Journal], None], asyncio.Future[None]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def read(self, fn: Callable[[Journal], _T]) -> _T:
        """Run a read on the journal's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, self.journal)

    async def transact(self, fn: Callable[[Journal], _T]) -> _T:
        """Run writes that also return something (admission) in one durable transaction."""
        result: list[_T] = []
        await self.write(lambda j: result.append(fn(j)))
        return result[0]

    async def write(self, op: Callable[[Journal], None]) -> None:
        """Return once `op` is durably committed (possibly together with others)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((op, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        await asyncio.shield(future)

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await loop.run_in_executor(
                    self._executor, self.journal.transaction, [op for op, _ in batch]
                )
            except BaseException as exc:  # one bad op fails the whole batch, and says so
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.journal.close()
