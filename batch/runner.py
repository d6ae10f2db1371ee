"""One `paybatch run` (and `validate`): lock, send exactly once, report.

    cli → runner → payment_run → (api, ratelimit, journal)
             └──→ (inputs, connection, outcomes, report, lock, shutdown)

The runner owns the run's life: it opens the input, takes the state file's lock, fetches
the first token, hands the rows to `PaymentRun`, and rebuilds the report from the input
and the journal once sending is over (or was stopped).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from batch.api import (
    HttpClient,
    open_client,
)
from batch.auth import TokenUnavailableError
from batch.config import ApiConfig, RunOptions
from batch.connection import connect
from batch.errors import AuthRefusedError, InterruptedRun
from batch.inputs import InputFile, open_input
from batch.journal import AsyncJournal, Journal
from batch.lock import StateLock
from batch.outcomes import report_row
from batch.payment_run import MAX_WORKERS, Clock, PaymentRun, Sleep, chunks
from batch.progress import NullProgress, Progress
from batch.ratelimit import (
    Window,
    parse_window,
)
from batch.report import (
    ReportPaths,
    ReportWriter,
    RunInfo,
    RunSummary,
    default_report_path,
    write_summary_json,
)
from batch.rows import InputRow, ReportRow, RowStatus
from batch.sendlog import HostSendLog
from batch.shutdown import Shutdown

log = logging.getLogger(__name__)

REPORT_CHUNK = 500


@dataclass(frozen=True, kw_only=True)
class RunResult:
    run_id: str
    exit_code: int
    counts: dict[str, int]
    paths: ReportPaths | None
    message: str = ""


def new_run_id(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def exit_code_for(counts: Counter[str]) -> int:
    done = counts[RowStatus.CREATED] + counts[RowStatus.ALREADY_CREATED]
    return 0 if done == sum(counts.values()) else 1


# -- entry points ---------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def run_payments(
    options: RunOptions,
    api_config: ApiConfig,
    *,
    client: HttpClient | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    wall: Callable[[], float] = time.time,
    now: Callable[[], datetime] = _utcnow,
    progress: Progress | None = None,
    on_secret: Callable[[str], None] = lambda _secret: None,
    run_id: str | None = None,
) -> RunResult:
    """Create the external payments of one input file, exactly once, and write the report.

    Raises PaybatchError for what stops a run before it starts (bad input file, lock held,
    bad options); what stops it later (signal, refused credentials, fail-fast) still
    writes the report and comes back as the result's exit code and message.
    """
    progress = progress or NullProgress()
    started = now()
    run_id = run_id or new_run_id(started)
    configured = tuple(parse_window(text) for text in options.rate_limits)
    input_file = open_input(options.input_path, sheet=options.sheet, columns=dict(options.columns))
    report_path = options.report_path or default_report_path(options.input_path, started)
    on_secret(api_config.client_secret.reveal())
    if options.effective_settle_delay < options.timeout:
        log.warning(
            "--settle-delay %.1f s is shorter than --timeout %.1f s: a payment the server is "
            "still creating may be missed by the lookup and sent again",
            options.effective_settle_delay,
            options.timeout,
        )
    log.info(
        "run started",
        extra={"input": str(options.input_path), "state": str(options.state_path)},
    )
    with StateLock(options.state_path, started_at=_iso(started)):
        journal = AsyncJournal(Journal.open(options.state_path))
        try:
            await journal.read(
                lambda j: j.begin_run(
                    run_id,
                    pid=os.getpid(),
                    started_at=_iso(started),
                    input_path=str(options.input_path),
                    input_sha256=input_file.sha256,
                )
            )
            owned = None
            if client is None:
                width = options.concurrency or MAX_WORKERS
                client = owned = open_client(timeout=options.timeout, concurrency=width)
            try:
                sending = await _send_all(
                    run_id=run_id,
                    input_file=input_file,
                    journal=journal,
                    api_config=api_config,
                    client=client,
                    options=options,
                    configured=configured,
                    clock=clock,
                    sleep=sleep,
                    wall=wall,
                    progress=progress,
                    on_secret=on_secret,
                )
            finally:
                if owned is not None:
                    await owned.aclose()
            info = RunInfo(
                run_id=run_id,
                started_at=started,
                finished_at=now(),
                input_path=options.input_path,
                input_sha256=input_file.sha256,
                environment=sending.environment,
                api_host=api_config.api_host,
            )
            paths, counts, errors = await _write_report(
                input_file, journal, run_id, report_path, xlsx=options.xlsx, info=info
            )
            exit_code = (
                sending.exit_code if sending.exit_code is not None else exit_code_for(counts)
            )
            await journal.read(
                lambda j: j.finish_run(run_id, finished_at=_iso(now()), exit_code=exit_code)
            )
        finally:
            journal.close()
            progress.close()
    if options.summary_json is not None:
        write_summary_json(
            options.summary_json,
            RunSummary.from_run(
                info,
                exit_code=exit_code,
                counts=dict(counts),
                error_counts=dict(errors),
                report=paths,
                requests=sending.requests,
            ),
        )
    log.info(
        "run finished",
        extra={"exit_code": exit_code, "counts": dict(counts), "report": str(paths.csv)},
    )
    return RunResult(
        run_id=run_id,
        exit_code=exit_code,
        counts=dict(counts),
        paths=paths,
        message=sending.message,
    )


@dataclass(frozen=True, kw_only=True)
class _Sent:
    environment: str
    exit_code: int | None = None  # None: decided by the report's statuses
    message: str = ""
    requests: dict[str, int] = field(default_factory=dict)


async def _send_all(
    *,
    run_id: str,
    input_file: InputFile,
    journal: AsyncJournal,
    api_config: ApiConfig,
    client: HttpClient,
    options: RunOptions,
    configured: tuple[Window, ...],
    clock: Clock,
    sleep: Sleep,
    wall: Callable[[], float],
    progress: Progress,
    on_secret: Callable[[str], None],
) -> _Sent:
    try:
        conn = await connect(
            client,
            api_config,
            windows=configured,
            clock=clock,
            sleep=sleep,
            on_secret=on_secret,
        )
    except (AuthRefusedError, TokenUnavailableError) as exc:
        return _Sent(environment="unknown", exit_code=exc.exit_code, message=str(exc))
    environment, api, limiter = conn.environment, conn.api, conn.limiter
    await journal.read(partial(Journal.bind, api_host=api_config.api_host, environment=environment))
    total_rows = input_file.count()
    progress.start(total_rows)
    # The windows are per IP: start from what this machine sent the host lately.
    sends = HostSendLog.for_host(api_config.api_host, clock=clock, wall=wall)
    limiter.seed(sends.load())
    with Shutdown() as shutdown:
        job = PaymentRun(
            run_id=run_id,
            input_file=input_file,
            journal=journal,
            api=api,
            limiter=limiter,
            options=options,
            progress=progress,
            stopping=shutdown.stopping,
            clock=clock,
            sleep=sleep,
            wall=wall,
            total_rows=total_rows,
        )
        keeper = asyncio.create_task(sends.keep(limiter.history))
        try:
            await job.execute()
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            sends.save(limiter.history())
    requests = {**api.requests, "token_requests": conn.provider.refreshes}
    if job.crashed is not None:
        # A bug, logged with its traceback; the journal is consistent, so the report
        # is still written and the rows left in doubt are settled by the next run.
        return _Sent(
            environment=environment,
            exit_code=1,
            message=f"stopped by an internal error ({type(job.crashed).__name__}); see the log",
            requests=requests,
        )
    if job.stopped_by is not None:
        return _Sent(
            environment=environment,
            exit_code=job.stopped_by.exit_code,
            message=str(job.stopped_by),
            requests=requests,
        )
    if shutdown.exit_code is not None:
        interrupted = InterruptedRun(
            shutdown.signal.name if shutdown.signal else "signal", shutdown.exit_code
        )
        return _Sent(
            environment=environment,
            exit_code=interrupted.exit_code,
            message=f"{interrupted}; the report lists the rows not reached as not_attempted",
            requests=requests,
        )
    return _Sent(environment=environment, requests=requests)


async def _write_report(
    input_file: InputFile,
    journal: AsyncJournal,
    run_id: str,
    path: Path,
    *,
    xlsx: bool,
    info: RunInfo,
) -> tuple[ReportPaths, Counter[str], Counter[str]]:
    """Build the report from the journal, row by row in input order, and commit it atomically."""
    with ReportWriter(path, extra_headers=input_file.extra_headers, xlsx=xlsx) as writer:
        for chunk in chunks(input_file.rows(), REPORT_CHUNK):
            ids = [row.order_id for row in chunk if row.problem is None]
            records = await journal.read(partial(Journal.get_many, order_ids=ids))
            for row in chunk:
                writer.write(report_row(row, records.get(row.order_id), run_id=run_id))
        paths = writer.commit(info)
        return paths, Counter(writer.counts), Counter(writer.error_counts)


def validate_file(
    input_path: Path,
    *,
    sheet: str | None = None,
    columns: dict[str, str] | None = None,
    report_path: Path | None = None,
    xlsx: bool = True,
    now: Callable[[], datetime] = _utcnow,
    run_id: str | None = None,
) -> RunResult:
    """Check every row offline and write a report with valid / invalid / duplicate."""
    started = now()
    run_id = run_id or new_run_id(started)
    input_file = open_input(input_path, sheet=sheet, columns=columns)
    path = report_path or default_report_path(input_path, started)
    with ReportWriter(path, extra_headers=input_file.extra_headers, xlsx=xlsx) as writer:
        for row in input_file.rows():
            writer.write(_validated(row))
        info = RunInfo(
            run_id=run_id,
            started_at=started,
            finished_at=now(),
            input_path=input_path,
            input_sha256=input_file.sha256,
            environment="offline",
            api_host="",
            kind="validate",
        )
        paths = writer.commit(info)
        counts = Counter(writer.counts)
    valid = counts[RowStatus.VALID] == sum(counts.values())
    return RunResult(run_id=run_id, exit_code=0 if valid else 1, counts=dict(counts), paths=paths)


def _validated(row: InputRow) -> ReportRow:
    problem = row.problem
    return ReportRow(
        row=row.row,
        order_id=row.order_id,
        status=row.status_if_refused or RowStatus.VALID,
        payment_source_token=row.payment_source_token,
        error_code=problem.code if problem else "",
        error_detail=problem.detail if problem else "",
        extra=row.extra,
    )
