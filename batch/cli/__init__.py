"""The click layer: parse options, build settings, call one plain function, map errors.

Exit codes:
  0    every row created or already created
  1    some rows not created (failed, invalid, duplicate, not_attempted)
  2    usage, configuration or input-file problem
  3    another run holds the state file's lock
  4    authentication or configuration refused by the API
  130  interrupted by SIGINT (Ctrl-C); 143 by SIGTERM
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from batch import __version__, eventloop
from batch.cli import stdio
from batch.cli.progress import BarProgress, LogProgress
from batch.config import (
    DEFAULT_FAIL_FAST_AFTER,
    DEFAULT_GRACE_SECONDS,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_STATE_PATH,
    DEFAULT_TIMEOUT,
    ApiConfig,
    RunOptions,
)
from batch.errors import PaybatchError, UsageError
from batch.inputs import parse_column_mapping
from batch.logs import configure_logging, register_secret
from batch.preflight import Confirm
from batch.progress import NullProgress, Progress
from batch.ratelimit import parse_window
from batch.reconcile import reconcile_state
from batch.report import reconcile_summary, write_summary_json
from batch.runner import RunResult, new_run_id, run_payments, validate_file

log = logging.getLogger("batch.cli")
F = TypeVar("F", bound=Callable[..., Any])

EPILOG = """\b
Exit codes:
  0    every row created or already created
  1    some rows not created (failed, invalid, duplicate, not_attempted)
  2    usage, configuration or input-file problem
  3    another run holds the state file's lock
  4    authentication or configuration refused by the API
  130  interrupted by SIGINT (Ctrl-C); 143 by SIGTERM
"""


def _windows(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    for value in values:
        try:
            parse_window(value)
        except UsageError as exc:
            raise click.BadParameter(str(exc)) from None
    return values


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
    click.option("--sheet", metavar="NAME", help="XLSX sheet to read (default: the first)."),
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


def _summary(result: RunResult) -> None:
    counts = ", ".join(
        f"{n} {status.replace('_', ' ')}" for status, n in sorted(result.counts.items())
    )
    total = sum(result.counts.values())
    _say(f"{plural(total, 'row')}: {counts or 'none'}")
    if result.paths is not None:
        _say(f"report: {result.paths.csv}")
        if result.paths.xlsx is not None:
            _say(f"report: {result.paths.xlsx}")
        _say(f"rows that need someone: {result.paths.errors}")
    if result.message:
        _say(f"paybatch: {result.message}", logging.ERROR if result.exit_code else logging.INFO)


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
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


@main.command(epilog=EPILOG)
@click.argument("input_path", metavar="INPUT", type=INPUT_PATH)
@output_options
@input_options
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_STATE_PATH,
    show_default=True,
    help="The run's state file: what was sent and what came back, for exactly-once reruns.",
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
    help="Seconds to wait after a lost answer before looking the payment up (default: --timeout).",
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
@click.option("--dry-run", is_flag=True, help="Read and check the input; send nothing.")
def run(
    input_path: Path,
    report_path: Path | None,
    no_xlsx: bool,
    log_format: str,
    quiet: bool,
    verbose: bool,
    columns: dict[str, str],
    sheet: str | None,
    state_path: Path,
    concurrency: int | None,
    rate_limits: tuple[str, ...],
    timeout: float,
    settle_delay: float | None,
    max_attempts: int,
    fail_fast_after: int,
    grace: float,
    summary_json: Path | None,
    yes: bool,
    show_progress: bool | None,
    sandbox: bool,
    dry_run: bool,
) -> None:
    """Create one external payment per row of INPUT (CSV, TSV or XLSX; `-` reads CSV from stdin)."""
    run_id = _logging(new_run_id(datetime.now(UTC)), log_format, quiet, verbose)
    with _errors_to_exit_codes(), stdio.input_path(input_path) as input_path:
        if dry_run:
            result = validate_file(
                input_path,
                sheet=sheet,
                columns=columns,
                report_path=report_path,
                xlsx=not no_xlsx,
                run_id=run_id,
                summary_json=summary_json,
            )
            _summary(result)
            sys.exit(result.exit_code)
        options = RunOptions(
            input_path=input_path,
            report_path=report_path,
            state_path=state_path,
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
        )
        progress = _progress(show_progress, quiet)
        with contextlib.ExitStack() as stack:
            api_config = stack.enter_context(_api_config(sandbox))
            state_given = (
                click.get_current_context().get_parameter_source("state_path")
                is not click.core.ParameterSource.DEFAULT
            )
            if sandbox and not state_given:
                # Sandbox payments must never reach the real state file: a later live run
                # would take them for orders already paid.
                scratch = Path(stack.enter_context(tempfile.TemporaryDirectory()))
                options = replace(options, state_path=scratch / "sandbox.sqlite")
            result = eventloop.run(
                run_payments(
                    options,
                    api_config,
                    progress=progress,
                    on_secret=register_secret,
                    run_id=run_id,
                    confirm=_confirm(yes),
                )
            )
        _summary(result)
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


@main.command(epilog=EPILOG)
@click.argument("input_path", metavar="INPUT", type=INPUT_PATH)
@output_options
@input_options
@SUMMARY_JSON
def validate(
    input_path: Path,
    report_path: Path | None,
    no_xlsx: bool,
    log_format: str,
    quiet: bool,
    verbose: bool,
    columns: dict[str, str],
    sheet: str | None,
    summary_json: Path | None,
) -> None:
    """Check every row of INPUT offline; write a report of valid, invalid and duplicate rows.

    Exits 0 when every row is valid, 1 otherwise, 2 for a problem with the file itself.
    """
    run_id = _logging(new_run_id(datetime.now(UTC)), log_format, quiet, verbose)
    with _errors_to_exit_codes(), stdio.input_path(input_path) as input_path:
        result = validate_file(
            input_path,
            sheet=sheet,
            columns=columns,
            report_path=report_path,
            xlsx=not no_xlsx,
            run_id=run_id,
            summary_json=summary_json,
        )
        _summary(result)
        sys.exit(result.exit_code)


@main.command(epilog=EPILOG)
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_STATE_PATH,
    show_default=True,
    help="The state file whose created payments to audit.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV of findings (default: reports/reconcile-<UTC time>.csv).",
)
@SUMMARY_JSON
@log_options
def reconcile(
    state_path: Path,
    report_path: Path | None,
    summary_json: Path | None,
    log_format: str,
    quiet: bool,
    verbose: bool,
) -> None:
    """Audit every payment the state file records as created against the server.

    Each must exist, belong to its order and carry its row's token, with no other payment
    on the order. Exits 0 when all match, 1 when any does not.
    """
    started = datetime.now(UTC)
    run_id = _logging(new_run_id(started), log_format, quiet, verbose)
    with _errors_to_exit_codes():
        path = report_path or Path("reports") / f"reconcile-{started:%Y%m%dT%H%M%SZ}.csv"
        result = reconcile_state(
            state_path,
            ApiConfig.from_env(os.environ),
            report_path=path,
            on_secret=register_secret,
        )
        _say(f"{plural(result.checked, 'created payment')} checked, {result.mismatched} mismatched")
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


@main.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("sandbox_args", nargs=-1, type=click.UNPROCESSED)
def sandbox(sandbox_args: tuple[str, ...]) -> None:
    """Serve the built-in sandbox on 127.0.0.1 for rehearsals; print the env vars to use.

    Takes the options of `python -m batch.sandbox` (see `paybatch sandbox --help`):
    --port, --open-orders, --limit, --latency-ms and the fault probabilities.
    """
    from batch.sandbox import SandboxServer, serve
    from batch.sandbox.__main__ import config_from_args, parser

    args = parser().parse_args(sandbox_args)
    try:
        config = config_from_args(args)
    except (ValueError, OSError, KeyError) as exc:
        raise click.UsageError(str(exc)) from None

    def announce(server: SandboxServer) -> None:
        for name, value in server.env().items():
            click.echo(f"export {name}={value}")
        click.echo(f"# sandbox serving on {server.base_url}; Ctrl-C to stop", err=True)

    serve(config, host=args.host, port=args.port, on_ready=announce)
