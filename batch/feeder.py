"""The Feeder: input rows → admitted, server-checked rows for the Sender.

For each batch of up to 25 valid rows it asks the journal what it knows (admission),
and for every row the journal cannot prove paid it asks the server (the preflight's two
lookups) before the row may be sent. `policy.finding_for` decides; only a row whose order
shows nothing goes to the Sender. Up to `PREFLIGHT_AHEAD` batches are looked up while
the Sender works on earlier ones, so the lookups never leave the workers idle.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import replace

from batch.api import LOOKUP_BATCH, LookupFailedError
from batch.errors import ApiUnreachableError
from batch.inputs import InputFile
from batch.journal import Journal, Plan, Record, Resolution, RowState
from batch.policy import VERDICTS, Finding, OrderView, finding_for, payment_of
from batch.progress import rows_text
from batch.rows import DUPLICATE_ORDER, InputRow, RowStatus, token_hash
from batch.run_context import FailFast, Phase, RunContext
from batch.settler import Settler

log = logging.getLogger(__name__)

PREFLIGHT_AHEAD = 2  # batches looked up ahead of the Sender


class Feeder:
    def __init__(
        self,
        ctx: RunContext,
        input_file: InputFile,
        queue: asyncio.Queue[InputRow],
        settler: Settler,
        fail_fast: FailFast,
    ) -> None:
        self._ctx = ctx
        self._input = input_file
        self._queue = queue
        self._settler = settler
        self._fail_fast = fail_fast
        self._ahead = asyncio.Semaphore(PREFLIGHT_AHEAD)
        self._lookups: set[asyncio.Task[None]] = set()
        self.preflight_batches = 0
        self._resolved_ids: set[str] = set()  # --match number: each order once per run
        self._checking = 0  # rows whose preflight lookup is under way

    async def run(self) -> None:
        """Feed every row; returns once every batch is admitted and looked up (or stopped)."""
        by_number = self._input.match == "number"
        try:
            for batch in lookup_batches(self._input.rows(), LOOKUP_BATCH):
                if self._ctx.stopping.is_set():
                    return
                if by_number:  # the IDs come from the server: admission waits for them
                    for row in batch:
                        if row.problem is None:
                            self._fail_fast.expect(row.row, "")
                    work = self._by_number(batch)
                else:
                    to_check = await self._admit(batch)
                    if not to_check:
                        continue
                    for row in to_check:
                        self._ctx.work.add()
                        self._fail_fast.expect(row.row, row.order_id)
                    work = self._preflight(to_check)
                if not await self._ctx.until(self._ahead.acquire()):
                    work.close()
                    return
                task = asyncio.create_task(work)
                self._lookups.add(task)
                task.add_done_callback(self._lookups.discard)
        finally:
            if self._lookups:
                await asyncio.gather(*self._lookups, return_exceptions=True)

    async def _admit(self, batch: list[InputRow]) -> list[InputRow]:
        """Record the batch's valid rows; hand out what is decided; return what needs a look."""
        ctx = self._ctx
        valid = [row for row in batch if row.problem is None]
        sha, run_id, now = self._input.sha256, ctx.run_id, ctx.wall()

        def admit(j: Journal) -> dict[str, tuple[Plan, Record | None]]:
            return {r.order_id: j.admit(r, run_id=run_id, input_sha256=sha, now=now) for r in valid}

        plans = await ctx.journal.transact(admit) if valid else {}
        to_check: list[InputRow] = []
        for row in batch:
            if row.problem is not None:
                ctx.admitted_done += 1
                ctx.advance(str(row.status_if_refused))
                continue
            plan, record = plans[row.order_id]
            if plan is Plan.SKIP:
                assert record is not None
                created = record.state is RowState.CREATED
                ctx.admitted_done += 1
                if not created and ctx.to_send is not None:
                    ctx.to_send -= 1  # counted as unpaid, but final: never sent again
                ctx.advance(RowStatus.ALREADY_CREATED if created else RowStatus.FAILED)
            elif plan is Plan.SETTLE:
                assert record is not None
                ctx.work.add()
                self._settler.add(row, record.sent_at, record.sent_timeout)
            else:
                to_check.append(row)
        return to_check

    async def _by_number(self, batch: list[InputRow]) -> None:
        """--match number: resolve the batch's numbers, record them, then as `_preflight`."""
        ctx = self._ctx
        try:
            numbers = [row.order_number for row in batch if row.problem is None]
            try:
                views = await ctx.api.order_views(numbers=numbers) if numbers else {}
            except LookupFailedError as exc:
                log.error("order numbers not looked up, %d rows not sent: %s", len(numbers), exc)
                self._stop_if_unreachable(exc)
                for row in batch:
                    ctx.advance(str(row.status_if_refused or RowStatus.NOT_ATTEMPTED))
                return
            resolved: list[InputRow] = []
            by_id: dict[str, OrderView] = {}
            for row in batch:
                if row.problem is not None:
                    resolved.append(row)
                    continue
                view = views[row.order_number]
                found = await self._resolve(row, view)
                if found is not None:
                    resolved.append(found)
                    by_id[found.order_id] = view
            to_check = await self._admit(resolved)
            for row in to_check:
                ctx.work.add()
                await self._apply(row, by_id[row.order_id])
        except Exception as exc:  # the rows stay pending: not attempted, sent by the next run
            ctx.failed("order number lookup", exc)
        finally:
            self._ahead.release()

    async def _resolve(self, row: InputRow, view: OrderView) -> InputRow | None:
        """The row with its order's ID, or None when the number is refused (recorded why)."""
        ctx = self._ctx
        if view.found and view.order_id in self._resolved_ids:
            resolution = Resolution(
                "",
                DUPLICATE_ORDER,
                f"order number {row.order_number} is order "
                f"{view.order_id}, which an earlier row already holds; not sent",
            )
        elif view.found:
            self._resolved_ids.add(view.order_id)
            resolution = Resolution(view.order_id)
        else:
            finding, detail = finding_for(view, "")
            resolution = Resolution("", VERDICTS[finding].code, detail)
        now = ctx.wall()
        await ctx.journal.write(lambda j: j.resolve(row.order_number, resolution, now=now))
        if resolution.order_id:
            return replace(row, order_id=resolution.order_id)
        log.warning("row %d: not sent, %s: %s", row.row, resolution.code, resolution.detail)
        if resolution.code == DUPLICATE_ORDER:
            ctx.advance(RowStatus.DUPLICATE)
        else:
            ctx.advance(RowStatus.FAILED)
            await self._fail_fast.observe(row.row, 404, resolution.code)
        return None

    async def _preflight(self, rows: list[InputRow]) -> None:
        ctx = self._ctx
        try:
            try:
                self._checked(len(rows))
                lookup = asyncio.ensure_future(
                    ctx.api.order_views(order_ids=[r.order_id for r in rows])
                )
                try:
                    looked = await ctx.until(lookup)  # a stop cancels it: it sends nothing
                finally:
                    self._checked(-len(rows))
                if not looked:
                    for _ in rows:  # stay pending: not_attempted, checked by the next run
                        ctx.work.done()
                    return
                views = lookup.result()
                self.preflight_batches += 1
            except LookupFailedError as exc:
                log.error("preflight failed, %d rows not sent: %s", len(rows), exc)
                self._stop_if_unreachable(exc)
                for _ in rows:
                    ctx.advance(RowStatus.NOT_ATTEMPTED)
                    ctx.work.done()
                return
            for row in rows:
                await self._apply(row, views[row.order_id])
        except Exception as exc:  # the rows stay pending: not attempted, sent by the next run
            for _ in rows:
                ctx.work.done()
            ctx.failed("preflight", exc)
        finally:
            self._ahead.release()

    def _stop_if_unreachable(self, exc: LookupFailedError) -> None:
        """A lookup retried until it gave up without once reaching the API stops the run
        (exit 5), as the Sender's unreached POSTs do: the rows wait for the next run."""
        if exc.unreached is not None:
            self._ctx.stop(
                ApiUnreachableError(
                    f"the API could not be reached ({exc.unreached}): {exc}; stopped",
                    cause=exc.unreached,
                )
            )

    def _checked(self, delta: int) -> None:
        self._checking += delta
        text = f"looking up {rows_text(self._checking)} before sending them (preflight)"
        self._ctx.set_phase("preflight", Phase(text) if self._checking else None)

    async def _apply(self, row: InputRow, view: OrderView) -> None:
        """One row's verdict: send it, or record what the server shows and why not."""
        ctx = self._ctx
        token = token_hash(row.payment_source_token)
        finding, detail = finding_for(view, token)
        verdict = VERDICTS[finding]
        if verdict.send:
            if not ctx.stopping.is_set() and await ctx.until(self._queue.put(row)):
                return  # the Sender's done() closes this row's account
            ctx.work.done()  # stopped: stays pending, not_attempted
            return
        ours = payment_of(view, token)
        now = ctx.wall()
        if ours is not None:  # a payment of this row exists: record it, never send again
            flag = "" if finding is Finding.OURS else verdict.code
            await ctx.journal.write(
                lambda j: j.mark_found(
                    order_id=row.order_id, payment_id=ours.id, flag=flag, detail=detail, now=now
                )
            )
            if flag:
                log.warning("row %d: order %s: %s", row.row, row.order_id, detail)
        else:
            code = verdict.code
            await ctx.journal.write(
                lambda j: j.mark_refused(order_id=row.order_id, code=code, detail=detail, now=now)
            )
            log.warning("row %d: not sent, %s: %s", row.row, code, detail)
        await self._fail_fast.observe(
            row.row, 404 if finding is Finding.NOT_FOUND else None, verdict.code
        )
        ctx.advance(verdict.status or RowStatus.FAILED)
        ctx.work.done()


def lookup_batches(rows: Iterator[InputRow], size: int) -> Iterator[list[InputRow]]:
    """Batches holding at most `size` valid rows (refused rows ride along for free)."""
    batch: list[InputRow] = []
    valid = 0
    for row in rows:
        batch.append(row)
        valid += row.problem is None
        if valid >= size:
            yield batch
            batch, valid = [], 0
    if batch:
        yield batch
