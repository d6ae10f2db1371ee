"""The Settler: rows whose POST may have been processed, looked up before anything else.

A row is looked up at `sent_at + timeout in force + settle delay`, so a server that
finishes a POST just before our timeout has had a whole settle delay more to show it.
`policy.finding_for` reads what the server shows, as in the preflight:

    a payment with this row's token     created (flagged when it is not alone or not
                                        active); never sent again
    nothing, twice, a settle delay      resent (or retryable once --max-attempts is
    apart                               spent); one negative lookup is never enough
    anything else (another source,      retryable with the verdict's code: not sent
    order no longer pending, ...)

A row inherited from a crashed run (`sending`) goes through the same path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from batch.api import LOOKUP_BATCH, LookupFailedError
from batch.journal import Journal, Record, RowState
from batch.policy import VERDICTS, Finding, OrderView, finding_for, payment_of
from batch.progress import rows_text
from batch.rows import InputRow, RowStatus, token_hash
from batch.run_context import Phase, RunContext

log = logging.getLogger(__name__)


@dataclass
class _Unsettled:
    row: InputRow
    look_at: float  # on the run's monotonic clock
    negatives: int = 0


class Settler:
    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self._rows: dict[str, _Unsettled] = {}
        self._added = asyncio.Event()
        self.resend: Callable[[InputRow], Awaitable[None]] | None = None  # set by the run
        self.may_resend: Callable[[str], bool] = lambda order_id: True

    def add(self, row: InputRow, sent_at: float | None, timeout: float | None) -> None:
        """Look this row up once its send can no longer be in progress at the server."""
        ctx = self._ctx
        delay = ctx.options.effective_settle_delay
        wait = (timeout if timeout is not None else ctx.options.timeout) + delay
        ready_in = wait if sent_at is None else max(0.0, sent_at + wait - ctx.wall())
        self._rows[row.order_id] = _Unsettled(row, ctx.clock() + ready_in)
        self._added.set()

    @property
    def waiting(self) -> int:
        return len(self._rows)

    async def run(self) -> None:
        ctx = self._ctx
        while True:
            self._added.clear()
            now = ctx.clock()
            ready = [o for o, u in self._rows.items() if u.look_at <= now][:LOOKUP_BATCH]
            if not ready:
                first = min((u.look_at for u in self._rows.values()), default=math.inf)
                wait = first - now
                ctx.set_phase("settle wait", self._waiting(first))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._added.wait(), None if wait == math.inf else wait)
                continue
            if ctx.stopping.is_set():
                for order_id in ready:  # stay unknown: reported so, settled by the next run
                    self._rows.pop(order_id)
                    ctx.advance(RowStatus.FAILED)
                    ctx.work.done()
                continue
            try:
                await self._settle(ready)
            except Exception as exc:  # the rows stay unknown; the next run settles them
                for order_id in ready:
                    if self._rows.pop(order_id, None) is not None:
                        ctx.work.done()
                ctx.failed("settling", exc)
            finally:
                ctx.set_phase("lookup", None)

    def _waiting(self, first: float) -> Phase | None:
        if first == math.inf:
            return None
        text = f"{rows_text(len(self._rows))} sent without a sure answer"
        return Phase(text, first, "to be looked up in {} s, once a late answer would have come")

    async def _settle(self, order_ids: list[str]) -> None:
        ctx = self._ctx
        what = f"looking up {rows_text(len(order_ids), 'unsettled row')}"
        log.info("%s", what)
        ctx.set_phase("lookup", Phase(what))
        try:
            views = await ctx.api.order_views(order_ids=order_ids)
        except LookupFailedError as exc:
            log.error("lookup failed, %d rows stay unknown: %s", len(order_ids), exc)
            for order_id in order_ids:
                self._rows.pop(order_id)
                ctx.advance(RowStatus.FAILED)
                ctx.work.done()
            return
        records = await ctx.journal.read(lambda j: j.get_many(order_ids))
        for order_id in order_ids:
            await self._one(self._rows[order_id], records[order_id], views[order_id])

    async def _one(self, unsettled: _Unsettled, record: Record, view: OrderView) -> None:
        ctx = self._ctx
        row = unsettled.row
        finding, detail = finding_for(
            view, record.token_sha256 or token_hash(row.payment_source_token)
        )
        ours = payment_of(view, record.token_sha256)
        now = ctx.wall()
        if ours is not None:
            self._rows.pop(row.order_id)
            flag = "" if finding is Finding.OURS else VERDICTS[finding].code
            created_by = record.sent_run_id or ctx.run_id
            if flag:
                log.warning(
                    "row %d: order %s settled with %s: %s", row.row, row.order_id, flag, detail
                )
            await ctx.journal.write(
                lambda j: j.mark_created(
                    order_id=row.order_id,
                    payment_id=ours.id,
                    http_status=record.http_status,
                    created_run_id=created_by,
                    attempts_delta=0,
                    now=now,
                    flag=flag,
                    detail=detail if flag else "",
                )
            )
            mine = created_by == ctx.run_id
            ctx.advance(RowStatus.CREATED if mine else RowStatus.ALREADY_CREATED)
            ctx.work.done()
            return
        if finding is Finding.NOTHING and unsettled.negatives == 0:
            unsettled.negatives = 1  # one negative lookup is not enough: look again later
            unsettled.look_at = ctx.clock() + ctx.options.effective_settle_delay
            self._added.set()
            return
        self._rows.pop(row.order_id)
        if finding is not Finding.NOTHING:
            code = VERDICTS[finding].code
            await ctx.journal.write(lambda j: _refuse(j, record, code, detail, now))
            log.warning("row %d: not resent, %s: %s", row.row, code, detail)
            ctx.advance(RowStatus.FAILED)
            ctx.work.done()
            return
        exhausted = not self.may_resend(row.order_id)
        state = RowState.RETRYABLE if exhausted else RowState.PENDING
        await ctx.journal.write(
            lambda j: j.mark_outcome(
                order_id=row.order_id,
                state=state,
                http_status=record.http_status,
                error_code=record.error_code if exhausted else "",
                error_detail=record.error_detail if exhausted else "",
                attempts_delta=0,
                now=now,
            )
        )
        if exhausted or ctx.stopping.is_set():
            ctx.advance(RowStatus.FAILED)
            ctx.work.done()
            return
        log.info("row %d: no payment found for order %s, twice; resending", row.row, row.order_id)
        assert self.resend is not None
        await self.resend(row)  # the Sender's done() closes this row's account


def _refuse(j: Journal, record: Record, code: str, detail: str, now: float) -> None:
    j.mark_outcome(
        order_id=record.order_id,
        state=RowState.RETRYABLE,
        http_status=record.http_status,
        error_code=code,
        error_detail=detail,
        attempts_delta=0,
        now=now,
    )
