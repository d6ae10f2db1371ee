"""`validate --server` and `run --dry-run`: the preflight alone, sending nothing.

Every valid row gets the verdict a run would give it: `valid` when it would be sent,
`already_created` when the state file or the server shows it paid, or `failed` with the
verdict's code (another payment source, not pending, not found, ...).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from batch.api import LOOKUP_BATCH, CommerceLayer, HttpClient, open_client
from batch.config import ApiConfig, RunOptions
from batch.connection import connect
from batch.feeder import lookup_batches
from batch.inputs import open_input
from batch.journal import Journal, Record, RowState
from batch.policy import FLAG_CODES, VERDICTS, Finding, OrderView, finding_for
from batch.report import ReportPaths, ReportWriter, RunInfo, default_report_path
from batch.rows import InputRow, ReportRow, RowStatus, token_hash
from batch.statefile import data_dir, locate


async def preview_file(
    options: RunOptions,
    api_config: ApiConfig,
    *,
    run_id: str,
    now: Callable[[], datetime],
    client: HttpClient | None = None,
    on_secret: Callable[[str], None] = lambda _secret: None,
) -> tuple[Counter[str], Counter[str], ReportPaths, RunInfo]:
    """Write a report of what a run would do; returns its counts, error counts and path."""
    started = now()
    input_file = open_input(
        options.input_path,
        sheet=options.sheet,
        columns=dict(options.columns),
        match=options.match,
    )
    path = options.report_path or default_report_path(options.input_path, started)
    owned = client is None
    http = open_client(timeout=options.timeout, concurrency=4) if client is None else client
    try:
        conn = await connect(
            http,
            api_config,
            windows=(),
            clock=time.monotonic,
            sleep=asyncio.sleep,
            on_secret=on_secret,
        )
        state = locate(
            api_host=api_config.api_host,
            environment=conn.environment,
            chosen=options.state_path,
            directory=options.state_dir or data_dir(),
        )
        records = _known(state.path)
        with ReportWriter(path, extra_headers=input_file.carried_headers, xlsx=options.xlsx) as out:
            for batch in lookup_batches(input_file.rows(), LOOKUP_BATCH):
                await _judge(batch, records, conn.api, out)
            info = RunInfo(
                run_id=run_id,
                started_at=started,
                finished_at=now(),
                input_path=options.input_path,
                input_sha256=input_file.sha256,
                environment=conn.environment,
                api_host=api_config.api_host,
                kind="validate",
            )
            paths = out.commit(info)
            return Counter(out.counts), Counter(out.error_counts), paths, info
    finally:
        if owned:
            await http.aclose()


def exit_code_of_preview(counts: Counter[str], errors: Counter[str]) -> int:
    would = counts[RowStatus.VALID] + counts[RowStatus.ALREADY_CREATED] + counts[RowStatus.SKIPPED]
    flagged = any(code in FLAG_CODES for code in errors)
    return 0 if would == sum(counts.values()) and not flagged else 1


def _known(state_path: Path) -> dict[str, Record]:
    """Created orders in the state file, read only; nothing when there is no file."""
    if not state_path.is_file() or state_path.stat().st_size == 0:
        return {}
    journal = Journal.open(state_path)
    try:
        return {r.order_id: r for r in journal.records([RowState.CREATED])}
    finally:
        journal.close()


async def _judge(
    batch: list[InputRow],
    records: dict[str, Record],
    api: CommerceLayer,
    out: ReportWriter,
) -> None:
    valid = [r for r in batch if r.problem is None]
    if valid and valid[0].order_number:  # --match number: every number is looked up
        numbers = [r.order_number for r in valid]
        by_number = await api.order_views(numbers=numbers)
        for row in batch:
            view = by_number.get(row.order_number) if row.problem is None else None
            if view is not None and view.found:
                row = replace(row, order_id=view.order_id)
            out.write(_line(row, records.get(row.order_id), view))
        return
    ask = [r.order_id for r in valid if r.order_id not in records]
    views: dict[str, OrderView] = await api.order_views(order_ids=ask) if ask else {}
    for row in batch:
        out.write(_line(row, records.get(row.order_id), views.get(row.order_id)))


def _line(row: InputRow, record: Record | None, view: OrderView | None) -> ReportRow:
    line = ReportRow(
        row=row.row,
        order_id=row.order_id,
        status=RowStatus.VALID,
        payment_source_token=row.payment_source_token,
        extra=row.carried,
    )
    problem = row.problem
    if problem is not None:
        status = row.status_if_refused or RowStatus.INVALID
        return _with(line, status, problem.code, problem.detail)
    if record is not None:
        token = token_hash(row.payment_source_token)
        changed = record.token_sha256 != token
        code = VERDICTS[Finding.TOKEN_CHANGED].code if changed else ""
        line = replace(line, external_payment_id=record.payment_id)
        return _with(line, RowStatus.ALREADY_CREATED, code, "the state file records it paid")
    assert view is not None
    finding, detail = finding_for(view, token_hash(row.payment_source_token))
    verdict = VERDICTS[finding]
    if verdict.send:
        return _with(line, RowStatus.VALID, "", "would be sent")
    return _with(line, verdict.status or RowStatus.FAILED, verdict.code, detail)


def _with(line: ReportRow, status: RowStatus, code: str, detail: str) -> ReportRow:
    return replace(line, status=status, error_code=code, error_detail=detail)
