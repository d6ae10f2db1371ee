"""The click layer: parse options, build settings, call one plain function, map errors.

The exit codes are `batch.errors.EXIT_CODES`; each command's `--help` shows its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any, TypeVar

import click

from batch import __version__
from batch.cli import stdio
from batch.cli.progress import BarProgress, LogProgress
from batch.cli.sandbox import sandbox
from batch.cli.serve import serve
from batch.config import (
    DEFAULT_FAIL_FAST_AFTER,
    DEFAULT_GRACE_SECONDS,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_TIMEOUT,
    ApiConfig,
    RunOptions,
    parse_clock_time,
    parse_duration,
)
from batch.errors import (
    RECONCILE,
    RUN,
    VALIDATE,
    PaybatchError,
    UsageError,
    exit_codes_help,
)
from batch.inputs import Match, parse_column_mapping
from batch.logs import configure_logging, register_secret
from batch.preflight import Confirm
from batch.progress import NullProgress, Progress
from batch.ratelimit import parse_window
from batch.reconcile import reconcile_input, reconcile_state
from batch.report import reconcile_summary, write_summary_json
from batch.runner import RunResult, new_run_id, preview, run_payments, validate_file
from batch.statefile import HOME_VARIABLE, STATE_VARIABLE, data_dir

log = logging.getLogger("batch.cli")
F = TypeVar("F", bound=Callable[..., Any])


def _windows(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    for value in values:
        try:
            parse_window(value)
        except UsageError as exc:
            raise click.BadParameter(str(exc)) from None
    return values


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    try:
        return None if value is None else parse_duration(value)
    except UsageError as exc:
        raise click.BadParameter(str(exc)) from None


def _clock_time(ctx: click.Context, param: click.Parameter, value: str | None) -> time | None:
    try:
        return None if value is None else parse_clock_time(value)
    except UsageError as exc:
        raise click.BadParameter(str(exc)) from None


def _columns(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    try:
        return parse_column_mapping(values)
    except UsageError as exc:
        raise click.BadParameter(str(exc)) from None


# `-` is standard input (CSV); a directory is refused by click with its own name.
INPUT_PATH = click.Path(dir_okay=False, allow_dash=True, path_type=Path)
SUMMARY_JSON = click.option(
    "--summary-json",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Also write a machine-readable summary here (`-`: standard output).",
)

INPUT_OPTIONS = (
    click.option(
        "--sheet",
        metavar="NAME",
        help="Workbook sheet to read (default: the one sheet with the required columns).",
    ),
    click.option(
        "--match",
        type=click.Choice(["id", "number"]),
        default="id",
        show_default=True,
        help="Key rows on the order ID (order_id) or on the order number shown in the "
        'dashboard (order_number: "Order Number", "Order #"); numbers are looked up on '
        "the server before anything is sent.",
    ),
    click.option(
        "--column",
        "columns",
        multiple=True,
        callback=_columns,
        metavar='FIELD="Header"',
        help='Map a header to a field, e.g. --column order_id="Order Ref". Repeatable.',
    ),
)
OUTPUT_OPTIONS = (
    click.option(
        "--report",
        "report_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help="CSV report to write (default: reports/<input-stem>-<UTC time>.csv).",
    ),
    click.option("--no-xlsx", is_flag=True, help="Do not write the XLSX report beside the CSV."),
)
LOG_OPTIONS = (
    click.option(
        "--log-format",
        type=click.Choice(["auto", "text", "json"]),
        default="auto",
        show_default=True,
        help="auto: text on a terminal, JSON lines otherwise.",
    ),
    click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors."),
    click.option("-v", "--verbose", is_flag=True, help="Debug logging."),
)


def input_options(fn: F) -> F:
    """Options shared by the commands that read an input file."""
    for option in reversed(INPUT_OPTIONS):
        fn = option(fn)
    return fn


def output_options(fn: F) -> F:
    """Report and logging options shared by the commands that write a report."""
    for option in reversed(OUTPUT_OPTIONS + LOG_OPTIONS):
        fn = option(fn)
    return fn


def log_options(fn: F) -> F:
    """Logging options, for the commands without a row report."""
    for option in reversed(LOG_OPTIONS):
        fn = option(fn)
    return fn


# Set by _logging(): with JSON logs, our own stderr lines go through the logger too, so
# a log pipeline reading stderr gets nothing but JSON lines, each with the run ID.
_json_stderr = False


def _say(text: str, level: int = logging.INFO) -> None:
    """One line on stderr for people: plain text, or a JSON log line when logs are JSON."""
    if _json_stderr:
        log.log(level, "%s", text)
    else:
        click.echo(text, err=True)


@contextlib.contextmanager
def _errors_to_exit_codes() -> Iterator[None]:
    """Our exception tree becomes one line on stderr and its exit code; no traceback."""
    try:
        yield
    except PaybatchError as exc:
        _say(f"paybatch: error: {exc}", logging.ERROR)
        sys.exit(exc.exit_code)


def _logging(run_id: str, log_format: str, quiet: bool, verbose: bool) -> str:
    """Configure logging for this run; the run ID goes on every line and into the report."""
    global _json_stderr
    verbosity = -1 if quiet else 1 if verbose else 0
    chosen = configure_logging(run_id=run_id, fmt=log_format, verbosity=verbosity)  # type: ignore[arg-type]
    _json_stderr = chosen == "json"
    return run_id


def plural(n: int, word: str) -> str:
    """`1 row`, `2 rows`."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _summary(result: RunResult, *, state_kept: bool = True) -> None:
    counts = ", ".join(
        f"{n} {status.replace('_', ' ')}" for status, n in sorted(result.counts.items())
    )
    total = sum(result.counts.values())
    _say(f"{plural(total, 'row')}: {counts or 'none'}")
    if result.state_path is not None:
        _say(f"state: {result.state_path}" if state_kept else "state: thrown away (sandbox)")
    if result.paths is not None:
        _say(f"report: {result.paths.csv}")
        if result.paths.xlsx is not None:
            _say(f"report: {result.paths.xlsx}")
        _say(f"rows that need someone: {result.paths.errors}")
    if result.message:
        _say(f"paybatch: {result.message}", logging.ERROR if result.exit_code else logging.INFO)


@click.group(epilog=exit_codes_help(), context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="paybatch")
def main() -> None:
    """Create Commerce Layer external payments from a spreadsheet, exactly once,
    and write a reconciliation report.

    \b
    Configuration comes from the environment:
      CL_BASE_URL       https://<slug>.commercelayer.io
      CL_CLIENT_ID      integration client ID
      CL_CLIENT_SECRET  integration client secret (never printed or logged)
      CL_SCOPE          optional, e.g. market:code:europe
      CL_AUTH_URL       default https://auth.commercelayer.io/oauth/token
    """


@main.command(epilog=exit_codes_help(RUN))
@click.argument("input_path", metavar="INPUT", type=INPUT_PATH)
@output_options
@input_options
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=STATE_VARIABLE,
    show_envvar=True,
    help="The run's state file: what was sent and what came back, for exactly-once reruns. "
    f"Default: <org>-<environment>.sqlite in ${HOME_VARIABLE}, or else in the user's data "
    "directory (~/.local/share/paybatch on Linux, %LOCALAPPDATA%\\paybatch on Windows).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    help="Requests in flight at most (default: adaptive).",
)
@click.option(
    "--rate-limit",
    "rate_limits",
    multiple=True,
    callback=_windows,
    metavar="N/Ws",
    help="A sliding-window limit, e.g. 50/10s. Repeatable. "
    "Default: Commerce Layer's limits for the credential's environment.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 600),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Per-request timeout in seconds.",
)
@click.option(
    "--settle-delay",
    type=click.FloatRange(0, 3600),
    help="A lost answer is looked up this long after its request timed out, and looked up "
    "again as long before any resend (default: --timeout).",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(1, 50),
    default=DEFAULT_MAX_ATTEMPTS,
    show_default=True,
    help="Sends per row in one run before it is left for the next run.",
)
@click.option(
    "--fail-fast-after",
    type=click.IntRange(0, 100_000),
    default=DEFAULT_FAIL_FAST_AFTER,
    show_default=True,
    help="Stop (exit 4) when the first N rows all fail with the same 401/403/404; 0 disables.",
)
@click.option(
    "--grace",
    type=click.FloatRange(0, 600),
    default=DEFAULT_GRACE_SECONDS,
    show_default=True,
    help="Seconds to let requests in flight finish after SIGINT/SIGTERM.",
)
@click.option(
    "--max-duration",
    callback=_duration,
    metavar="DURATION",
    help="Stop sending after this long (5h, 90m, 3600s), like a stop: the report is "
    "written, the rows not reached are not_attempted (exit 1) and the next run resumes them.",
)
@click.option(
    "--until",
    callback=_clock_time,
    metavar="HH:MM",
    help="Stop sending at this local time (its next occurrence), as --max-duration does.",
)
@SUMMARY_JSON
@click.option(
    "--yes",
    "-y",
    is_flag=True,
    help="Do not ask before paying in a live organization (without a terminal it never asks).",
)
@click.option(
    "--progress/--no-progress",
    "show_progress",
    default=None,
    help="Progress bar (default: on a terminal only; otherwise a log line every 30 s).",
)
@click.option(
    "--sandbox",
    is_flag=True,
    help="Run against the built-in sandbox (no credentials). Its state is thrown away "
    "afterwards unless --state is given.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check the input and ask the server what each row would get (the preflight); "
    "send nothing.",
)
def run(
    input_path: Path,
    report_path: Path | None,
    no_xlsx: bool,
    log_format: str,
    quiet: bool,
    verbose: bool,
    columns: dict[str, str],
    sheet: str | None,
    match: Match,
    state_path: Path | None,
    concurrency: int | None,
    rate_limits: tuple[str, ...],
    timeout: float,
    settle_delay: float | None,
    max_attempts: int,
    fail_fast_after: int,
    grace: float,
    max_duration: float | None,
    until: time | None,
    summary_json: Path | None,
    yes: bool,
    show_progress: bool | None,
    sandbox: bool,
    dry_run: bool,
) -> None:
    """Create one external payment per row of INPUT (CSV, TSV or XLSX; `-` reads CSV from stdin)."""
    run_id = _logging(new_run_id(datetime.now(UTC)), log_format, quiet, verbose)
    with _errors_to_exit_codes(), stdio.input_path(input_path) as input_path:
        options = RunOptions(
            input_path=input_path,
            report_path=report_path,
            state_path=state_path,
            state_dir=data_dir(os.environ),
            concurrency=concurrency,
            rate_limits=rate_limits,
            timeout=timeout,
            settle_delay=settle_delay,
            max_attempts=max_attempts,
            fail_fast_after=fail_fast_after,
            grace_seconds=grace,
            xlsx=not no_xlsx,
            summary_json=summary_json,
            sheet=sheet,
            columns=columns,
            match=match,
            sandbox=sandbox,
            max_duration=max_duration,
            until=until,
        )
        progress = _progress(show_progress, quiet)
        with contextlib.ExitStack() as stack:
            api_config = stack.enter_context(_api_config(sandbox))
            if dry_run:
                result = preview(options, api_config, run_id=run_id, on_secret=register_secret)
                _summary(result)
                sys.exit(result.exit_code)
            state_given = (
                click.get_current_context().get_parameter_source("state_path")
                is click.core.ParameterSource.COMMANDLINE
            )
            if sandbox and not state_given:
                # Sandbox payments must never reach the real state file: a later live run
                # would take them for orders already paid. $PAYBATCH_STATE does not count.
                scratch = Path(stack.enter_context(tempfile.TemporaryDirectory()))
                options = replace(options, state_path=scratch / "sandbox.sqlite", state_dir=scratch)
            result = asyncio.run(
                run_payments(
                    options,
                    api_config,
                    progress=progress,
                    on_secret=register_secret,
                    run_id=run_id,
                    confirm=_confirm(yes),
                )
            )
        _summary(result, state_kept=state_given or not sandbox)
        sys.exit(result.exit_code)


@contextlib.contextmanager
def _api_config(sandbox: bool) -> Iterator[ApiConfig]:
    if not sandbox:
        yield ApiConfig.from_env(os.environ)
        return
    from batch.sandbox import SandboxConfig, SandboxServer  # the server only when asked for

    with SandboxServer(SandboxConfig()) as server:
        log.info("sandbox listening", extra={"url": server.base_url})
        yield ApiConfig.from_env(server.env())


def _confirm(yes: bool) -> Confirm | None:
    """Ask on a terminal before paying in a live organization; never under cron or with --yes."""
    if yes or not (sys.stdin.isatty() and sys.stderr.isatty()):
        return None

    def ask(rows: int, organization: str) -> bool:
        question = (
            f"Create {plural(rows, 'external payment')} in the LIVE organization {organization}?"
        )
        return click.confirm(question, default=False, err=True)

    return ask


def _progress(show: bool | None, quiet: bool) -> Progress:
    if show is None:
        show = sys.stderr.isatty() and not quiet
    if show:
        return BarProgress()
    return NullProgress() if quiet else LogProgress()


@main.command(epilog=exit_codes_help(VALIDATE))
@click.argument("input_path", metavar="INPUT", type=INPUT_PATH)
@output_options
@input_options
@SUMMARY_JSON
@click.option(
    "--server",
    "ask_server",
    is_flag=True,
    help="Also ask the server what each row would get (the preflight of `run`): already "
    "paid, another payment source, not pending... Needs the CL_* credentials; sends nothing.",
)
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=STATE_VARIABLE,
    show_envvar=True,
    help="With --server: the state file whose created rows count as already paid "
    "(default: the run's).",
)
def validate(
    input_path: Path,
    report_path: Path | None,
    no_xlsx: bool,
    log_format: str,
    quiet: bool,
    verbose: bool,
    columns: dict[str, str],
    sheet: str | None,
    match: Match,
    ask_server: bool,
    state_path: Path | None,
    summary_json: Path | None,
) -> None:
    """Check every row of INPUT; write a report of valid, invalid and duplicate rows.

    Offline unless --server. Exits 0 when every row is valid, 1 otherwise, 2 for a
    problem with the file itself.
    """
    run_id = _logging(new_run_id(datetime.now(UTC)), log_format, quiet, verbose)
    with _errors_to_exit_codes(), stdio.input_path(input_path) as input_path:
        if ask_server:
            options = RunOptions(
                input_path=input_path,
                report_path=report_path,
                state_path=state_path,
                state_dir=data_dir(os.environ),
                xlsx=not no_xlsx,
                summary_json=summary_json,
                sheet=sheet,
                columns=columns,
                match=match,
            )
            result = preview(
                options, ApiConfig.from_env(os.environ), run_id=run_id, on_secret=register_secret
            )
            _summary(result)
            sys.exit(result.exit_code)
        result = validate_file(
            input_path,
            sheet=sheet,
            columns=columns,
            match=match,
            report_path=report_path,
            xlsx=not no_xlsx,
            run_id=run_id,
            summary_json=summary_json,
        )
        _summary(result)
        sys.exit(result.exit_code)


@main.command(epilog=exit_codes_help(RECONCILE))
@click.argument(
    "input_path",
    required=False,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=STATE_VARIABLE,
    show_envvar=True,
    help="The state file whose created payments to audit (default: the run's; ignored "
    "when INPUT is given).",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV of findings (default: reports/reconcile-<UTC time>.csv).",
)
@input_options
@SUMMARY_JSON
@log_options
def reconcile(
    input_path: Path | None,
    state_path: Path | None,
    report_path: Path | None,
    sheet: str | None,
    match: Match,
    columns: dict[str, str],
    summary_json: Path | None,
    log_format: str,
    quiet: bool,
    verbose: bool,
) -> None:
    """Check on the server what is in effect for each order.

    Without INPUT: every order the state file records as created. With INPUT: every row
    of that file, with no state file at all. Each order's active payment source and
    status are read and judged by the verdict table (README, "How exactly-once works"):
    paid, not_paid, paid_with_another_token, paid_with_another_source, source_replaced,
    more_than_one_payment, order_not_found. Exits 0 when every order is paid, 1 otherwise.
    """
    started = datetime.now(UTC)
    run_id = _logging(new_run_id(started), log_format, quiet, verbose)
    with _errors_to_exit_codes():
        path = report_path or Path("reports") / f"reconcile-{started:%Y%m%dT%H%M%SZ}.csv"
        config = ApiConfig.from_env(os.environ)
        if input_path is not None:
            result = reconcile_input(
                input_path,
                config,
                sheet=sheet,
                columns=columns,
                match=match,
                report_path=path,
                on_secret=register_secret,
            )
        else:
            result = reconcile_state(
                state_path,
                config,
                report_path=path,
                state_dir=data_dir(os.environ),
                on_secret=register_secret,
            )
        _say(f"{plural(result.checked, 'order')} checked, {result.mismatched} not paid as expected")
        _say(f"report: {result.report}")
        if summary_json is not None:
            summary = reconcile_summary(
                run_id=run_id,
                exit_code=result.exit_code,
                checked=result.checked,
                mismatched=result.mismatched,
                report=result.report,
                state_path=state_path,
                started_at=started,
                finished_at=datetime.now(UTC),
            )
            write_summary_json(summary_json, summary)
        sys.exit(result.exit_code)


main.add_command(sandbox)
main.add_command(serve)
