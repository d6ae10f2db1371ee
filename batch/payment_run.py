"""The async core of a run: feed rows to a worker pool, send each once, settle the unknowns.

The send loop is a fixed pool of workers fed through a bounded queue, so memory tracks
concurrency, not file size. Every send is recorded durably (`sending`) after the limiter
grants its slot and before the POST leaves. Unknown outcomes go to the settler, which
waits the settle delay and looks them up (25 orders a request, paced by the same
limiter) before anything is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

from batch.api import LOOKUP_BATCH, Answer, CommerceLayer, FoundPayment, LookupFailedError
from batch.backoff import Backoff
from batch.config import RunOptions
from batch.errors import AuthRefusedError, PaybatchError
from batch.inputs import InputFile
from batch.journal import AsyncJournal, Journal, Plan, Record, RowState
from batch.policy import Outcome
from batch.progress import Progress
from batch.ratelimit import RateLimiter, concurrency_for
from batch.rows import InputRow, RowStatus

log = logging.getLogger(__name__)

FEED_CHUNK = 256
MAX_WORKERS = 64
ASSUMED_LATENCY = 1.0  # seconds, until the first answers tell us better
RETUNE_SECONDS = 0.05  # how often the in-flight target follows the latency estimate
FAIL_FAST_STATUSES = frozenset({401, 403, 404})
# A refusal of our credential or its permissions, not of the row: not resent in this run,
# but left retryable so the next run sends it again (a permanent failure is only resent
# once its payload changes, and finance cannot fix a permission by editing the row).
CREDENTIAL_STATUSES = frozenset({401, 403})

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass
class _Work:
    """Rows handed to workers or the settler and not yet at their status for this run."""

    outstanding: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()  # nothing handed out yet

    def add(self) -> None:
        self.outstanding += 1
        self.idle.clear()

    def done(self) -> None:
        self.outstanding -= 1
        if self.outstanding == 0:
            self.idle.set()


class PaymentRun:
    """The async core: feed, send, settle. Everything external is injected."""

    def __init__(
        self,
        *,
        run_id: str,
        input_file: InputFile,
        journal: AsyncJournal,
        api: CommerceLayer,
        limiter: RateLimiter,
        options: RunOptions,
        progress: Progress,
        stopping: asyncio.Event,
        clock: Clock,
        sleep: Sleep,
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        total_rows: int = 0,
    ) -> None:
        self.run_id = run_id
        self.input = input_file
        self.journal = journal
        self.api = api
        self.limiter = limiter
        self.options = options
        self.progress = progress
        self.stopping = stopping
        self.clock = clock
        self.sleep = sleep
        self.wall = wall
        self.rng = rng or random.Random()
        self.backoff = Backoff(max_attempts=options.max_attempts)
        self.queue: asyncio.Queue[InputRow] = asyncio.Queue(maxsize=MAX_WORKERS * 2)
        self.unknown: dict[str, tuple[InputRow, float]] = {}  # order → (row, look up after)
        self.unknown_added = asyncio.Event()
        # POSTs per order in this run: --max-attempts bounds these, not the journal's total,
        # which also counts earlier runs' sends.
        self.sends: Counter[str] = Counter()
        self.work = _Work()
        self.in_flight = 0
        self.target_in_flight = options.concurrency or self._little(ASSUMED_LATENCY)
        self.latency = ASSUMED_LATENCY
        self._tuned_at = -math.inf
        self.capacity = asyncio.Condition()
        self.stopped_by: PaybatchError | None = None  # why the run stopped early, if it did
        self.crashed: Exception | None = None
        self.total_rows = total_rows
        self.finished = 0
        self._eta_at = -math.inf
        self._first_failures: list[tuple[int | None, str]] = []
        self._first_failed_orders: list[str] = []
        self._first_outcomes = 0

    # -- the whole run --------------------------------------------------------------

    async def execute(self) -> None:
        workers = self.options.concurrency or MAX_WORKERS
        tasks = [asyncio.create_task(self._worker()) for _ in range(workers)]
        tasks.append(asyncio.create_task(self._settler()))
        try:
            await self._feed()
            await self._until(self.work.idle.wait())
            if self.stopping.is_set() and self.work.outstanding:
                log.warning(
                    "waiting up to %.0f s for requests in flight", self.options.grace_seconds
                )
                await self._drain()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _until(self, waiting: Awaitable[object]) -> None:
        """Wait for `waiting`, or for a stop request, whichever comes first."""
        done = asyncio.ensure_future(waiting)
        stop = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait({done, stop}, return_when=asyncio.FIRST_COMPLETED)
        for fut in (done, stop):
            if not fut.done():
                fut.cancel()

    async def _drain(self) -> None:
        """After a stop: let requests already in flight finish, for a bounded time."""
        async with self.capacity:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.capacity.wait_for(lambda: self.in_flight == 0),
                    self.options.grace_seconds,
                )

    def stop(self, reason: PaybatchError | None = None) -> None:
        if reason is not None and self.stopped_by is None:
            self.stopped_by = reason
            log.error("%s", reason)
        self.stopping.set()

    def _failed(self, where: str, exc: Exception) -> None:
        """A task hit an error it cannot handle: stop the run; the report is still written."""
        if isinstance(exc, PaybatchError):  # credentials revoked, token endpoint down, ...
            self.stop(exc)
            return
        log.exception("%s failed unexpectedly", where)
        if self.crashed is None:
            self.crashed = exc
        self.stop()

    # -- feeding --------------------------------------------------------------------

    async def _feed(self) -> None:
        for chunk in chunks(self.input.rows(), FEED_CHUNK):
            if self.stopping.is_set():
                return
            valid = [row for row in chunk if row.problem is None]
            plans = await self.journal.read(
                partial(
                    _admit_all,
                    rows=valid,
                    run_id=self.run_id,
                    sha=self.input.sha256,
                    now=self.wall(),
                )
            )
            for row in chunk:
                if row.problem is not None:
                    self._advance(str(row.status_if_refused))
                    continue
                plan, record = plans[row.order_id]
                if plan is Plan.SKIP:
                    assert record is not None
                    self._advance(_skip_status(record))
                elif plan is Plan.SETTLE:
                    assert record is not None
                    self.work.add()
                    self._await_settling(row, record.sent_at)
                else:
                    self.work.add()
                    if self.queue.full():
                        await self._until(self.queue.put(row))
                    else:
                        self.queue.put_nowait(row)
                    if self.stopping.is_set():
                        return

    # -- sending --------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            row = await self.queue.get()
            try:
                if self.stopping.is_set():
                    continue  # stays pending: not_attempted in the report
                async with self.capacity:
                    await self.capacity.wait_for(lambda: self.in_flight < self.target_in_flight)
                    self.in_flight += 1
                try:
                    await self._send(row)
                except Exception as exc:  # stop, never hang: the journal stays consistent
                    self._failed(f"row {row.row}", exc)
                finally:
                    async with self.capacity:
                        self.in_flight -= 1
                        self.capacity.notify_all()
            finally:
                self.queue.task_done()
                self.work.done()

    async def _send(self, row: InputRow) -> None:
        """Send one row until it reaches a status for this run (or moves to the settler)."""
        failures = 0
        first = self.clock()
        while True:

            async def mark_sending() -> None:
                await self.journal.write(
                    lambda j: j.mark_sending(row, run_id=self.run_id, now=self.wall())
                )

            started = self.clock()
            answer = await self.api.create_external_payment(row, before_send=mark_sending)
            self._learn_latency(self.clock() - started)
            outcome = answer.outcome
            if outcome is not Outcome.THROTTLED:
                self.sends[row.order_id] += 1
            if outcome is Outcome.CREATED:
                await self.journal.write(
                    partial(
                        Journal.mark_created,
                        order_id=row.order_id,
                        payment_id=answer.payment_id,
                        http_status=answer.http_status,
                        created_run_id=self.run_id,
                        attempts_delta=1,
                        now=self.wall(),
                    )
                )
                await self._observe_first(answer.http_status, "")
                self._advance(RowStatus.CREATED)
                return
            if outcome is Outcome.THROTTLED:
                await self._record(row, RowState.PENDING, answer, attempts=0)
                if self.stopping.is_set():
                    return
                continue  # the limiter has paused everyone; a 429 is not an attempt
            if outcome is Outcome.UNKNOWN:
                await self._record(row, RowState.UNKNOWN, answer, attempts=1)
                log.warning(
                    "row %d: outcome unknown (%s); will look it up before any resend",
                    row.row,
                    answer.error_code,
                )
                self.work.add()  # the settler owns it now; our own done() follows
                self._await_settling(row, self.wall())
                return
            if outcome is Outcome.PERMANENT:
                credential = answer.http_status in CREDENTIAL_STATUSES
                state = RowState.RETRYABLE if credential else RowState.FAILED
                await self._record(row, state, answer, attempts=1)
                await self._observe_first(answer.http_status, answer.error_code, row.order_id)
                self._advance(RowStatus.FAILED)
                return
            # NOT_SENT or REFUSED: the server did not take it; back off and resend.
            failures += 1
            if self.backoff.gives_up(failures, self.clock() - first) or self.stopping.is_set():
                await self._record(row, RowState.RETRYABLE, answer, attempts=1)
                self._advance(RowStatus.FAILED)
                return
            await self._record(row, RowState.PENDING, answer, attempts=1)
            await self.sleep(self.backoff.delay(failures, self.rng))

    async def _record(
        self, row: InputRow, state: RowState, answer: Answer, *, attempts: int
    ) -> None:
        await self.journal.write(
            lambda j: j.mark_outcome(
                order_id=row.order_id,
                state=state,
                http_status=answer.http_status,
                error_code=answer.error_code,
                error_detail=answer.error_detail,
                attempts_delta=attempts,
                now=self.wall(),
            )
        )

    # -- settling unknown outcomes ----------------------------------------------------

    def _await_settling(self, row: InputRow, sent_at: float | None) -> None:
        """Queue a row whose payment may exist; look it up once the settle delay has passed."""
        ready_in = self.options.effective_settle_delay
        if sent_at is not None:
            ready_in = max(0.0, sent_at + ready_in - self.wall())
        self.unknown[row.order_id] = (row, self.clock() + ready_in)
        self.unknown_added.set()

    async def _settler(self) -> None:
        while True:
            self.unknown_added.clear()
            now = self.clock()
            ready = [o for o, (_, at) in self.unknown.items() if at <= now][:LOOKUP_BATCH]
            if not ready:
                wait = min((at for _, at in self.unknown.values()), default=math.inf) - now
                timeout = None if wait == math.inf else wait
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.unknown_added.wait(), timeout)
                continue
            if self.stopping.is_set():
                for order_id in ready:  # stay unknown: reported so, settled by the next run
                    self.unknown.pop(order_id)
                    self.work.done()
                continue
            try:
                await self._settle(ready)
            except Exception as exc:  # the rows stay unknown; the next run settles them
                for order_id in ready:
                    if self.unknown.pop(order_id, None) is not None:
                        self.work.done()
                self._failed("settling", exc)

    async def _settle(self, order_ids: list[str]) -> None:
        try:
            found = await self.api.external_payments_for(order_ids)
        except LookupFailedError as exc:
            log.error("lookup failed, %d rows stay unknown: %s", len(order_ids), exc)
            for order_id in order_ids:
                self.unknown.pop(order_id)
                self._advance(RowStatus.FAILED)
                self.work.done()
            return
        by_order: dict[str, list[FoundPayment]] = {}
        for payment in found:
            by_order.setdefault(payment.order_id, []).append(payment)
        records = await self.journal.read(lambda j: j.get_many(order_ids))
        for order_id in order_ids:
            row, _ = self.unknown.pop(order_id)
            record = records[order_id]
            payments = by_order.get(order_id, [])
            if payments:
                await self._settled_created(row, record, payments)
                self.work.done()
                continue
            exhausted = self.sends[order_id] >= self.options.max_attempts
            state = RowState.RETRYABLE if exhausted else RowState.PENDING
            keep = record if exhausted else None  # a retryable row keeps its last error
            await self.journal.write(
                partial(
                    Journal.mark_outcome,
                    order_id=order_id,
                    state=state,
                    http_status=record.http_status,
                    error_code=keep.error_code if keep else "",
                    error_detail=keep.error_detail if keep else "",
                    attempts_delta=0,
                    now=self.wall(),
                )
            )
            if exhausted or self.stopping.is_set():
                self._advance(RowStatus.FAILED)
                self.work.done()
                continue
            log.info("row %d: no payment found for order %s; resending", row.row, order_id)
            await self.queue.put(row)  # the worker's done() closes this row's account

    async def _settled_created(
        self, row: InputRow, record: Record, payments: list[FoundPayment]
    ) -> None:
        mine = [p for p in payments if p.token_sha256 == record.token_sha256]
        chosen = (mine or payments)[0]
        flag = "TOKEN_MISMATCH" if not mine else "EXTRA_PAYMENTS" if len(payments) > 1 else ""
        if flag:
            log.warning("row %d: order %s settled with flag %s", row.row, row.order_id, flag)
        created_by = record.sent_run_id or self.run_id
        await self.journal.write(
            lambda j: j.mark_created(
                order_id=row.order_id,
                payment_id=chosen.id,
                http_status=record.http_status,
                created_run_id=created_by,
                attempts_delta=0,
                now=self.wall(),
                flag=flag,
            )
        )
        mine_now = created_by == self.run_id
        self._advance(RowStatus.CREATED if mine_now else RowStatus.ALREADY_CREATED)

    # -- adapting ---------------------------------------------------------------------

    def _advance(self, status: str) -> None:
        """One row reached its status; refresh the rate-limit ETA at most once a second."""
        self.progress.advance(status)
        self.finished += 1
        now = self.clock()
        if now - self._eta_at >= 1.0:
            self._eta_at = now
            left = max(0, self.total_rows - self.finished)
            self.progress.eta(self.limiter.min_duration(left))

    def _little(self, latency: float) -> int:
        """In flight: Little's law for the sustained rate, but at least half the shortest
        window's burst, so a freed window refills within a couple of latencies instead of
        trickling. Half, not all: when the configured limits overstate the server's, a
        whole burst in flight would meet the first 429 together (bench: 25 429s against 9).
        """
        windows = self.limiter.windows
        rate = min(w.limit / w.seconds for w in windows)
        burst = min(windows, key=lambda w: w.seconds).limit // 2
        return min(MAX_WORKERS, max(concurrency_for(rate, latency, cap=MAX_WORKERS), burst))

    def _learn_latency(self, seconds: float) -> None:
        if self.options.concurrency:
            return
        self.latency = 0.8 * self.latency + 0.2 * seconds
        now = self.clock()
        if now - self._tuned_at >= RETUNE_SECONDS:  # at thousands of answers a second
            self._tuned_at = now
            self.target_in_flight = max(1, self._little(self.latency * 1.5))

    async def _observe_first(self, status: int | None, code: str, order_id: str = "") -> None:
        """Stop early when the first rows all fail alike with a configuration-looking error.

        Those rows' failures say nothing about the rows themselves, so they are left
        retryable: once the configuration is fixed, the rerun sends them.
        """
        limit = self.options.fail_fast_after
        if not limit or self._first_outcomes >= limit:
            return
        self._first_outcomes += 1
        if status in FAIL_FAST_STATUSES:
            self._first_failures.append((status, code))
            self._first_failed_orders.append(order_id)
        alike = len(self._first_failures) == limit and len(set(self._first_failures)) == 1
        if self._first_outcomes == limit and alike:
            status, code = self._first_failures[0]
            self.stop(
                AuthRefusedError(
                    f"the first {limit} rows all failed with HTTP {status} {code}: "
                    "this looks like a configuration problem (wrong organization, "
                    "environment, scope or permissions), not bad rows; stopped"
                )
            )
            await self.journal.write(
                partial(Journal.reopen_failed, order_ids=list(self._first_failed_orders))
            )


def _admit_all(
    journal: Journal, *, rows: list[InputRow], run_id: str, sha: str, now: float
) -> dict[str, tuple[Plan, Record | None]]:
    plans: dict[str, tuple[Plan, Record | None]] = {}

    def admit(j: Journal) -> None:
        for row in rows:
            plans[row.order_id] = j.admit(row, run_id=run_id, input_sha256=sha, now=now)

    journal.transaction([admit])
    return plans


def _skip_status(record: Record) -> str:
    return RowStatus.ALREADY_CREATED if record.state is RowState.CREATED else RowStatus.FAILED


def chunks(rows: Iterator[InputRow], size: int) -> Iterator[list[InputRow]]:
    chunk: list[InputRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
