"""The async core of a run: the Feeder, the Sender's workers and the Settler, wired together.

    input → Feeder (admit, preflight) → queue → Sender workers (POST) ─┐
                                                  ▲                  │ unknown outcome
                                                  └── Settler ◄──────┘ (lookup first)

Memory tracks concurrency, not file size: the queue is bounded, and the Feeder reads the
input in batches of 25 valid rows.
"""

from __future__ import annotations

import asyncio
import logging
import random

from batch.feeder import Feeder
from batch.heartbeat import Heartbeat, watch_deadline
from batch.inputs import InputFile
from batch.progress import rows_text
from batch.rows import InputRow
from batch.run_context import FailFast, Phase, RunContext
from batch.sender import Sender
from batch.settler import Settler
from batch.tuning import MAX_WORKERS, Tuner

log = logging.getLogger(__name__)


class PaymentRun:
    """Feed, send, settle; everything external comes in through the context."""

    def __init__(
        self,
        ctx: RunContext,
        input_file: InputFile,
        *,
        rng: random.Random | None = None,
        fail_fast_hint: str = "",
    ) -> None:
        self.ctx = ctx
        self.queue: asyncio.Queue[InputRow] = asyncio.Queue(maxsize=MAX_WORKERS * 2)
        self.tuner = Tuner(ctx.limiter, fixed=ctx.options.concurrency, clock=ctx.clock)
        self.settler = Settler(ctx)
        fail_fast = FailFast(ctx, hint=fail_fast_hint)
        self.sender = Sender(ctx, self.queue, self.settler, self.tuner, fail_fast, rng=rng)
        self.feeder = Feeder(ctx, input_file, self.queue, self.settler, fail_fast)
        self.settler.resend = self._resend
        self.settler.may_resend = self.sender.may_resend

    async def execute(self) -> None:
        ctx = self.ctx
        workers = ctx.options.concurrency or MAX_WORKERS
        tasks = [asyncio.create_task(self.sender.worker()) for _ in range(workers)]
        tasks.append(asyncio.create_task(self.settler.run()))
        sender = self.sender
        heartbeat = Heartbeat(
            ctx, held=lambda: sender.held > 0, sending=lambda: self.tuner.in_flight > sender.held
        )
        tasks.append(asyncio.create_task(heartbeat.run()))
        if ctx.deadline is not None:
            tasks.append(asyncio.create_task(watch_deadline(ctx, ctx.deadline)))
        try:
            await self.feeder.run()
            await ctx.until(ctx.work.idle.wait())
            if ctx.stopping.is_set() and self.tuner.in_flight:
                grace = ctx.options.grace_seconds
                sending = rows_text(self.tuner.in_flight - sender.held, "request")
                waiting = f"stopping: waiting for {sending} in flight"
                ctx.set_phase("drain", Phase(waiting, ctx.clock() + grace, "up to {} s"))
                log.warning("waiting up to %.0f s for requests in flight", grace)
                await self.tuner.drained(grace)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _resend(self, row: InputRow) -> None:
        if not self.ctx.stopping.is_set() and await self.ctx.until(self.queue.put(row)):
            return
        self.ctx.work.done()  # stopped: stays pending, not_attempted
