"""One `paybatch run` (and `validate`): lock, send exactly once, report.

    cli → runner → payment_run → feeder, sender, settler, tuning → (api, ratelimit, journal)
             └──→ (inputs, connection, outcomes, preview, report, statefile, lock, shutdown)

The runner owns the run's life: it opens the input, fetches the first token (which says
the environment), takes the lock of that organization and environment, opens its state
file (see `statefile`), hands the rows to `PaymentRun`, and rebuilds the report from the
input and the journal once sending is over (or was stopped).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from batch.api import (
    HttpClient,
    open_client,
)
from batch.auth import TokenUnavailableError
from batch.config import ApiConfig, RunOptions, duration_text
from batch.connection import Connection, connect
from batch.errors import (
    ApiUnreachableError,
    AuthRefusedError,
    DeadlineReached,
    InputFileError,
    InterruptedRun,
)
from batch.inputs import InputFile, Match, open_input
from batch.journal import AsyncJournal, Journal
from batch.lock import StateLock
from batch.payment_run import PaymentRun
from batch.policy import FLAG_CODES
from batch.preflight import Confirm, rows_to_create
from batch.preview import exit_code_of_preview, preview_file
from batch.progress import NullProgress, Progress, rows_text
from batch.ratelimit import (
    parse_window,
)
from batch.rebuild import write_report, write_state_report
from batch.report import (
    ReportPaths,
    ReportWriter,
    RunInfo,
    RunSummary,
    check_run_paths,
    default_report_path,
    organization,
    write_summary_json,
)
from batch.rows import InputRow, ReportRow, RowStatus
from batch.run_context import Clock, Deadline, RunContext, Sleep
from batch.sendlog import HostSendLog, log_path
from batch.shutdown import Shutdown
from batch.statefile import data_dir, locate
from batch.tuning import MAX_WORKERS

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RunResult:
    run_id: str
    exit_code: int
    counts: dict[str, int]
    paths: ReportPaths | None
    message: str = ""
    state_path: Path | None = None  # None: the run stopped before it knew its state file


def new_run_id(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def exit_code_for(counts: Counter[str], errors: Counter[str] | None = None) -> int:
    """0: every row created or already created, with nothing for a person to look at."""
    done = counts[RowStatus.CREATED] + counts[RowStatus.ALREADY_CREATED]
    done += counts[RowStatus.SKIPPED]  # a repeated header line is not an order
    flagged = any(code in FLAG_CODES for code in (errors or {}))
    return 0 if done == sum(counts.values()) and not flagged else 1


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
    confirm: Confirm | None = None,
    stop: asyncio.Event | None = None,
) -> RunResult:
    """Create the external payments of one input file, exactly once, and write the report.

    Raises PaybatchError for what stops a run before it starts (bad input file, lock held,
    bad options); what stops it later (signal, refused credentials, fail-fast) still
    writes the report and comes back as the result's exit code and message. Setting `stop`
    (an event of the loop this runs on) stops new sends as a first Ctrl-C does.
    """
    progress = progress or NullProgress()
    started = now()
    run_id = run_id or new_run_id(started)
    ends = options.deadline(started)
    deadline = None if ends is None else Deadline(clock() + ends[0], ends[1])
    configured = tuple(parse_window(text) for text in options.rate_limits)
    input_file = open_input(
        options.input_path,
        sheet=options.sheet,
        columns=dict(options.columns),
        match=options.match,
    )
    report_path = options.report_path or default_report_path(options.input_path, started)
    check_run_paths(
        report_path,
        xlsx=options.xlsx,
        input_path=options.input_path,
        state=options.state_path,
        summary=options.summary_json,
    )
    on_secret(api_config.client_secret.reveal())
    log.info("run started", extra={"input": str(options.input_path)})

    async def finish(journal: AsyncJournal | None, state: Path | None, sent: _Sent) -> _Finished:
        info = RunInfo(
            run_id=run_id,
            started_at=started,
            finished_at=now(),
            input_path=options.input_path,
            input_sha256=input_file.sha256,
            environment=sent.environment,
            api_host=api_config.api_host,
            state_path=state,
        )
        try:
            paths, counts, errors = await write_report(
                input_file, journal, run_id, report_path, xlsx=options.xlsx, info=info
            )
        except InputFileError as exc:  # changed or broken since: the state file has it all
            if journal is None:
                raise
            paths, counts, errors = await write_state_report(
                journal, run_id, report_path, xlsx=options.xlsx, info=info, cause=str(exc)
            )
            sent = replace(sent, exit_code=exc.exit_code, message=str(exc))
        if sent.resumable:
            left = rows_text(counts[RowStatus.NOT_ATTEMPTED])
            sent = replace(
                sent, message=f"{sent.message}; {left} not attempted; the next run resumes them"
            )
        code = sent.exit_code if sent.exit_code is not None else exit_code_for(counts, errors)
        if journal is not None:
            await journal.write(
                lambda j: j.finish_run(run_id, finished_at=_iso(now()), exit_code=code)
            )
        return _Finished(sent, info, paths, counts, errors, code, state)

    owned = None
    if client is None:
        width = options.concurrency or MAX_WORKERS
        client = owned = open_client(timeout=options.timeout, concurrency=width)
    try:
        try:
            # The token comes first: the state file and its lock are per environment,
            # and only the token says which environment the credentials belong to.
            conn = await connect(
                client,
                api_config,
                windows=configured,
                clock=clock,
                sleep=sleep,
                on_secret=on_secret,
            )
        except (AuthRefusedError, TokenUnavailableError) as exc:
            refused = _Sent(environment="unknown", exit_code=exc.exit_code, message=str(exc))
            done = await finish(None, None, refused)
        else:
            location = locate(
                api_host=api_config.api_host,
                environment=conn.environment,
                chosen=options.state_path,
                directory=options.state_dir or data_dir(),
            )
            log.info("state file", extra={"state": str(location.path)})
            with StateLock(location.lock_path, state_files=(location.path, location.default)):
                journal = AsyncJournal(Journal.open(location.path))
                try:
                    await journal.write(
                        partial(
                            _begin,
                            run_id=run_id,
                            api_host=api_config.api_host,
                            environment=conn.environment,
                            started_at=_iso(started),
                            input_path=options.input_path,
                            input_sha256=input_file.sha256,
                        )
                    )
                    sent = await _send_all(
                        run_id=run_id,
                        input_file=input_file,
                        journal=journal,
                        conn=conn,
                        options=options,
                        clock=clock,
                        sleep=sleep,
                        wall=wall,
                        progress=progress,
                        api_host=api_config.api_host,
                        confirm=confirm,
                        deadline=deadline,
                        stop=stop,
                    )
                    done = await finish(journal, location.path, sent)
                finally:
                    journal.close()
    finally:
        if owned is not None:
            await owned.aclose()
        progress.close()
    if options.summary_json is not None:
        write_summary_json(
            options.summary_json,
            RunSummary.from_run(
                done.info,
                exit_code=done.exit_code,
                counts=dict(done.counts),
                error_counts=dict(done.errors),
                report=done.paths,
                requests=done.sent.requests,
            ),
        )
    log.info(
        "run finished",
        extra={
            "exit_code": done.exit_code,
            "counts": dict(done.counts),
            "report": str(done.paths.csv),
        },
    )
    return RunResult(
        run_id=run_id,
        exit_code=done.exit_code,
        counts=dict(done.counts),
        paths=done.paths,
        message=done.sent.message,
        state_path=done.state_path,
    )


def _begin(
    journal: Journal,
    *,
    run_id: str,
    api_host: str,
    environment: str,
    started_at: str,
    input_path: Path,
    input_sha256: str,
) -> None:
    """Check the state file belongs to this organization and environment; record the run.

    Runs under the lock, so any run of this host still open in the file is a dead one.
    """
    journal.bind(api_host=api_host, environment=environment)
    host = socket.gethostname()
    if abandoned := journal.end_abandoned_runs(host=host, finished_at=started_at):
        log.info("earlier runs that never finished marked ended", extra={"runs": abandoned})
    journal.begin_run(
        run_id,
        pid=os.getpid(),
        host=host,
        started_at=started_at,
        input_path=str(input_path),
        input_sha256=input_sha256,
    )


@dataclass(frozen=True, kw_only=True)
class _Sent:
    environment: str
    exit_code: int | None = None  # None: decided by the report's statuses
    message: str = ""
    requests: dict[str, int] = field(default_factory=dict)
    resumable: bool = False  # stopped early on purpose: the message counts the rows left


@dataclass(frozen=True)
class _Finished:
    sent: _Sent
    info: RunInfo
    paths: ReportPaths
    counts: Counter[str]
    errors: Counter[str]
    exit_code: int
    state_path: Path | None


async def _send_all(
    *,
    run_id: str,
    input_file: InputFile,
    journal: AsyncJournal,
    conn: Connection,
    options: RunOptions,
    clock: Clock,
    sleep: Sleep,
    wall: Callable[[], float],
    progress: Progress,
    api_host: str,
    confirm: Confirm | None = None,
    deadline: Deadline | None = None,
    stop: asyncio.Event | None = None,
) -> _Sent:
    environment, api, limiter = conn.environment, conn.api, conn.limiter
    to_create = await rows_to_create(input_file, journal)
    _log_start(to_create, limiter.min_duration(to_create), deadline, clock())
    live = environment == "live" and to_create > 0
    if live and confirm is not None and not confirm(to_create, organization(api_host)):
        return _Sent(environment=environment, exit_code=1, message="not confirmed: nothing sent")
    fail_fast_hint = (
        "; the built-in sandbox knows only the sample's orders: to rehearse your own file, "
        "serve it with `paybatch sandbox --open-orders`"
        if options.sandbox
        else ""
    )
    total_rows = input_file.count()
    progress.start(total_rows)
    # The windows are per IP: start from what this machine sent the host lately.
    directory = options.state_dir or data_dir()  # a sandbox run's scratch directory too
    sends = HostSendLog(log_path(directory, api_host), clock=clock, wall=wall)
    limiter.seed(sends.load())
    with Shutdown(stop) as shutdown:
        conn.auth.stopped = shutdown.stopping.is_set  # no 401 resend after a stop either
        job = RunContext(
            run_id=run_id,
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
            to_send=to_create,
            deadline=deadline,
        )
        keeper = asyncio.create_task(sends.keep(limiter.history))
        try:
            await PaymentRun(job, input_file, fail_fast_hint=fail_fast_hint).execute()
        except InputFileError as exc:  # changed or broken mid-run; the report says so
            return _Sent(environment=environment, exit_code=exc.exit_code, message=str(exc))
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
    # A signal after the deadline outranks it (PRECEDENCE: 130/143 before 1).
    signalled_late = isinstance(job.stopped_by, DeadlineReached) and shutdown.signal is not None
    if job.stopped_by is not None and not signalled_late:
        return _Sent(
            environment=environment,
            exit_code=job.stopped_by.exit_code,
            message=str(job.stopped_by),
            requests=requests,
            resumable=isinstance(job.stopped_by, (DeadlineReached, ApiUnreachableError)),
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


def _log_start(to_send: int, least: float, deadline: Deadline | None, now: float) -> None:
    """The start line: the rows left to send, and the least time the rate limits allow."""
    log.info(
        "%s to send: at least %s at the rate limits",
        rows_text(to_send),
        duration_text(least),
        extra={"rows_to_send": to_send, "min_duration_s": round(least, 1)},
    )
    if deadline is not None and now + least > deadline.at:
        log.warning(
            "the deadline %s comes first: the rows not sent by then are left for the next run",
            deadline.label,
        )


def preview(
    options: RunOptions,
    api_config: ApiConfig,
    *,
    run_id: str,
    client: HttpClient | None = None,
    now: Callable[[], datetime] = _utcnow,
    on_secret: Callable[[str], None] = lambda _secret: None,
) -> RunResult:
    """The preflight alone (`run --dry-run`, `validate --server`): sends nothing."""
    counts, errors, paths, info = asyncio.run(
        preview_file(
            options, api_config, run_id=run_id, now=now, client=client, on_secret=on_secret
        )
    )
    exit_code = exit_code_of_preview(counts, errors)
    if options.summary_json is not None:
        summary = RunSummary.from_run(
            info, exit_code=exit_code, counts=dict(counts), error_counts=dict(errors), report=paths
        )
        write_summary_json(options.summary_json, summary)
    return RunResult(run_id=run_id, exit_code=exit_code, counts=dict(counts), paths=paths)


def validate_file(
    input_path: Path,
    *,
    sheet: str | None = None,
    columns: dict[str, str] | None = None,
    match: Match = "id",
    report_path: Path | None = None,
    xlsx: bool = True,
    now: Callable[[], datetime] = _utcnow,
    run_id: str | None = None,
    summary_json: Path | None = None,
) -> RunResult:
    """Check every row offline and write a report with valid / invalid / duplicate."""
    started = now()
    run_id = run_id or new_run_id(started)
    input_file = open_input(input_path, sheet=sheet, columns=columns, match=match)
    path = report_path or default_report_path(input_path, started)
    check_run_paths(path, xlsx=xlsx, input_path=input_path, summary=summary_json)
    with ReportWriter(path, extra_headers=input_file.carried_headers, xlsx=xlsx) as writer:
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
    valid = counts[RowStatus.VALID] + counts[RowStatus.SKIPPED]
    exit_code = 0 if valid == sum(counts.values()) else 1
    if summary_json is not None:
        summary = RunSummary.from_run(
            info, exit_code=exit_code, counts=counts, error_counts=writer.error_counts, report=paths
        )
        write_summary_json(summary_json, summary)
    return RunResult(run_id=run_id, exit_code=exit_code, counts=dict(counts), paths=paths)


def _validated(row: InputRow) -> ReportRow:
    problem = row.problem
    return ReportRow(
        row=row.row,
        order_id=row.order_id,
        status=row.status_if_refused or RowStatus.VALID,
        payment_source_token=row.payment_source_token,
        error_code=problem.code if problem else "",
        error_detail=problem.detail if problem else "",
        extra=row.carried,
    )
