"""The run's one-second timer: the ETA, the phase in force, and the deadline.

Every second the progress hears the limiter's ETA for the rows left (so a bar redraws
and a cron line comes even when no row finishes) and the phase in force. A limiter
that holds a ready row back for a second or more is shown as "waiting for the rate
limit, resuming in N s"; lookups and the settle wait are shown only while nothing is
being sent, since they are what the run is waiting on only then.
"""

from __future__ import annotations

from collections.abc import Callable

from batch.errors import DeadlineReached
from batch.run_context import Deadline, Phase, RunContext

TICK = 1.0
SHOWN_WAIT = 1.0  # a shorter hold is the steady pace, not a wait worth naming


class Heartbeat:
    def __init__(
        self, ctx: RunContext, *, held: Callable[[], bool], sending: Callable[[], bool]
    ) -> None:
        self._ctx = ctx
        self._held = held  # a row waits for the limiter's grant
        self._sending = sending  # a request is in flight (or backing off)

    async def run(self) -> None:
        ctx = self._ctx
        due = ctx.clock()
        while True:
            now = ctx.clock()
            if now >= due:
                due = now + TICK
                self.beat()
            await ctx.sleep(max(0.0, due - now))

    def beat(self) -> None:
        ctx = self._ctx
        now = ctx.clock()
        until = ctx.limiter.paused_until()
        held = until - now >= SHOWN_WAIT and self._held()
        ctx.phases.pop("rate limit", None)
        if held:
            ctx.phases["rate limit"] = Phase("waiting for the rate limit", until)
        ctx.progress.eta(ctx.limiter.min_duration(ctx.rows_left()))
        ctx.show_phase(sending=self._sending())


async def watch_deadline(ctx: RunContext, deadline: Deadline) -> None:
    """Stop the run at the deadline, exactly like a signal: no new POST leaves after it."""
    while not ctx.stopping.is_set():
        left = deadline.at - ctx.clock()
        if left <= 0:
            ctx.stop(DeadlineReached(f"stopped at the deadline {deadline.label}"))
            return
        await ctx.until(ctx.sleep(left))
