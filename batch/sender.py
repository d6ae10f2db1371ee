"""The Sender: owns each POST from its slot to its recorded outcome.

    wait for capacity → limiter grant → stop? → commit `sending` (unless stopped) → stop?
    → POST → `policy.decide(CREATE, outcome)` → journal state → done, resend or settle

The stop is checked after the limiter's grant and again inside the transaction that
commits `sending`, so once a stop is requested no new POST leaves: a row stopped before
its commit stays `pending` (not attempted), and so does one whose `sending` was committed
just as the stop came: it is moved back, since it certainly never left. A crash in between
leaves it `sending`, for the next run to settle.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter

from batch.api import Answer
from batch.backoff import Backoff
from batch.journal import Journal, RowState
from batch.policy import Action, Call, Outcome, decide
from batch.rows import InputRow, RowStatus
from batch.run_context import FailFast, Reachability, RunContext
from batch.settler import Settler
from batch.tuning import Tuner

log = logging.getLogger(__name__)


class Sender:
    def __init__(
        self,
        ctx: RunContext,
        queue: asyncio.Queue[InputRow],
        settler: Settler,
        tuner: Tuner,
        fail_fast: FailFast,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._ctx = ctx
        self._queue = queue
        self._settler = settler
        self._tuner = tuner
        self._fail_fast = fail_fast
        self._rng = rng or random.Random()
        self._backoff = Backoff(max_attempts=ctx.options.max_attempts)
        # POSTs per order in this run: --max-attempts bounds these, not the journal's total.
        self.sends: Counter[str] = Counter()
        self.held = 0  # workers waiting for the limiter's grant (the heartbeat shows it)
        self._reachability = Reachability(ctx)

    async def worker(self) -> None:
        ctx = self._ctx
        while True:
            row = await self._queue.get()
            try:
                if ctx.stopping.is_set():
                    continue  # stays pending: not_attempted in the report
                async with self._tuner.slot():
                    try:
                        await self.send(row)
                    except Exception as exc:  # stop, never hang: the journal stays consistent
                        ctx.failed(f"row {row.row}", exc)
            finally:
                self._queue.task_done()
                ctx.work.done()

    async def send(self, row: InputRow) -> None:
        """Send one row until it reaches a status for this run (or moves to the settler)."""
        ctx = self._ctx
        failures = 0
        first = ctx.clock()
        while True:
            self.held += 1
            try:
                sent = await self._grant()
            finally:
                self.held -= 1
            if sent is None or ctx.stopping.is_set() or not await self._commit_sending(row):
                return  # stays pending: not_attempted
            if ctx.stopping.is_set():  # committed, but certainly not sent: back to pending
                await self._record(row, RowState.PENDING, Answer(Outcome.NOT_SENT), attempts=0)
                return
            started = ctx.clock()
            answer = await ctx.api.create_external_payment(row, sent=sent)
            self._tuner.learn(ctx.clock() - started)
            self._reachability.observe(answer)
            rule = decide(Call.CREATE, answer.outcome)
            if rule.attempt:
                self.sends[row.order_id] += 1
            assert rule.state is not None
            if rule.action is Action.DONE:
                await self._created(row, answer)
                return
            if rule.action is Action.RESEND_NOW:
                await self._record(row, rule.state, answer, attempts=0)
                continue  # the limiter has paused everyone; a 429 is not an attempt
            if rule.action is Action.SETTLE:
                await self._record(row, rule.state, answer, attempts=1)
                log.warning(
                    "row %d: outcome unknown (%s); will look it up before any resend",
                    row.row,
                    answer.error_code or answer.http_status,
                )
                ctx.work.add()  # the settler owns it now; our own done() follows
                self._settler.add(row, ctx.wall(), ctx.options.timeout)
                return
            if rule.action is Action.FINAL:
                await self._record(row, rule.state, answer, attempts=1)
                await self._fail_fast.observe(row.row, answer.http_status, answer.error_code)
                ctx.advance(RowStatus.FAILED)
                return
            # BACK_OFF: the server did not take it; resend after a pause, bounded.
            failures += 1
            if self._backoff.gives_up(failures, ctx.clock() - first) or ctx.stopping.is_set():
                await self._record(row, RowState.RETRYABLE, answer, attempts=1)
                ctx.advance(RowStatus.FAILED)
                return
            await self._record(row, rule.state, answer, attempts=1)
            await ctx.sleep(self._backoff.delay(failures, self._rng))

    async def _grant(self) -> float | None:
        """The limiter's slot for one POST (its ticket), or None when the run stops first."""
        ctx = self._ctx
        if ctx.limiter.paused_until() <= ctx.clock():
            return await ctx.limiter.acquire()  # a slot now: nothing to cancel
        # A stop cancels the wait: the limiter then lets the next waiter in.
        grant = asyncio.ensure_future(ctx.limiter.acquire())
        return grant.result() if await ctx.until(grant) else None

    def may_resend(self, order_id: str) -> bool:
        return self.sends[order_id] < self._ctx.options.max_attempts

    async def _commit_sending(self, row: InputRow) -> bool:
        """Commit the intent to POST, unless a stop came first; True if committed."""
        ctx = self._ctx
        now, timeout, run_id, stopping = ctx.wall(), ctx.options.timeout, ctx.run_id, ctx.stopping

        def mark(j: Journal) -> bool:
            if stopping.is_set():  # checked inside the transaction, just before the commit
                return False
            j.mark_sending(row, run_id=run_id, now=now, timeout=timeout)
            return True

        return await ctx.journal.transact(mark)

    async def _created(self, row: InputRow, answer: Answer) -> None:
        ctx = self._ctx
        order_id, payment_id, status, run_id, now = (
            row.order_id,
            answer.payment_id,
            answer.http_status,
            ctx.run_id,
            ctx.wall(),
        )
        await ctx.journal.write(
            lambda j: j.mark_created(
                order_id=order_id,
                payment_id=payment_id,
                http_status=status,
                created_run_id=run_id,
                attempts_delta=1,
                now=now,
            )
        )
        await self._fail_fast.observe(row.row, answer.http_status, "")
        ctx.advance(RowStatus.CREATED)

    async def _record(
        self, row: InputRow, state: RowState, answer: Answer, *, attempts: int
    ) -> None:
        order_id, now = row.order_id, self._ctx.wall()
        await self._ctx.journal.write(
            lambda j: j.mark_outcome(
                order_id=order_id,
                state=state,
                http_status=answer.http_status,
                error_code=answer.error_code,
                error_detail=answer.error_detail,
                attempts_delta=attempts,
                now=now,
            )
        )
