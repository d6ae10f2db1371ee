"""The page's Check: `paybatch validate`, plus the server preflight when credentials exist.

check_upload(upload, api_config, ...) -> Check   never raises for a bad file
fix_for(message) -> Fix | None                   the sheet and column choices a
                                                 file-level message asks for
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from batch.config import ApiConfig, RunOptions
from batch.errors import InputFileError, PaybatchError
from batch.logs import register_secret
from batch.report import ReportPaths, default_report_path
from batch.rows import REQUIRED_COLUMNS, RowStatus
from batch.runner import RunResult, new_run_id, preview, validate_file

log = logging.getLogger(__name__)

# At most this many refused rows on the page; the error file has them all.
SHOWN_ROWS = 500
# The statuses a check gives a row that a run would send.
SENDABLE = frozenset({RowStatus.VALID})
# `--column payment_source_token="Token"` in the inputs' suggestions.
_SUGGESTED = re.compile(r'--column (\w+)="([^"]*)"')
_SHEETS = re.compile(r"'((?:[^'\\]|\\.)*)'")


@dataclass
class Upload:
    """A file dropped on the page, kept in the server's private directory."""

    id: str
    path: Path
    sheet: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    check: Check | None = None


@dataclass(frozen=True)
class Refused:
    row: str
    order_id: str
    status: str
    code: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class Fix:
    """What the page offers for a file-level problem: sheets to pick, columns to map."""

    sheets: tuple[str, ...] = ()
    columns: dict[str, str] = field(default_factory=dict)  # field -> suggested header


@dataclass(frozen=True, kw_only=True)
class Check:
    counts: dict[str, int] = field(default_factory=dict)
    paths: ReportPaths | None = None
    refused: tuple[Refused, ...] = ()
    refused_total: int = 0
    server_checked: bool = False
    problem: str = ""  # the file-level message, the CLI's text
    fix: Fix | None = None
    server_problem: str = ""  # why the preflight did not run (credentials, network)

    @property
    def to_create(self) -> int:
        return sum(n for status, n in self.counts.items() if status in SENDABLE)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def fix_for(message: str) -> Fix | None:
    """The choices a file-level message asks for, read from its own words."""
    if "choose one with --sheet" in message:
        listed = message.split(" all have the required columns")[0]
        return Fix(sheets=tuple(_SHEETS.findall(listed)))
    if "missing required column" in message or "no sheet has the required" in message:
        suggested = dict(_SUGGESTED.findall(message))
        return Fix(columns={name: suggested.get(name, "") for name in REQUIRED_COLUMNS})
    if "(given for " in message:  # a --column header that is not in the file
        return Fix(columns=dict.fromkeys(REQUIRED_COLUMNS, ""))
    return None


def _refused_rows(paths: ReportPaths) -> tuple[list[Refused], int]:
    """The rows a run would not send, read back from the check's own report CSV."""
    shown: list[Refused] = []
    total = 0
    with paths.csv.open(newline="", encoding="utf-8-sig") as f:
        for record in csv.DictReader(f):
            if record.get("status") in SENDABLE:
                continue
            total += 1
            if len(shown) < SHOWN_ROWS:
                shown.append(
                    Refused(
                        row=record.get("row", ""),
                        order_id=record.get("order_id", ""),
                        status=record.get("status", ""),
                        code=record.get("error_code", ""),
                        reason=record.get("error_detail", ""),
                    )
                )
    return shown, total


def run_options(
    upload: Upload, *, report: Path, state_dir: Path, state_path: Path | None
) -> RunOptions:
    """The options of `paybatch run UPLOAD --report REPORT [--sheet] [--column]...`."""
    return RunOptions(
        input_path=upload.path,
        report_path=report,
        state_dir=state_dir,
        state_path=state_path,
        sheet=upload.sheet,
        columns=dict(upload.columns),
    )


def check_upload(
    upload: Upload, api_config: ApiConfig | None, *, state_dir: Path, state_path: Path | None
) -> Check:
    """Validate the upload into a report beside it; ask the server too when it can."""
    started = datetime.now(UTC)
    run_id = new_run_id(started)
    report = default_report_path(upload.path, started, directory=upload.path.parent / "checks")
    server_problem = ""
    result: RunResult | None = None
    try:
        if api_config is not None:
            try:
                options = run_options(
                    upload, report=report, state_dir=state_dir, state_path=state_path
                )
                result = preview(options, api_config, run_id=run_id, on_secret=register_secret)
            except InputFileError:
                raise
            except PaybatchError as exc:  # refused credentials, server unreachable, ...
                server_problem = str(exc)
        if result is None:
            result = validate_file(
                upload.path,
                sheet=upload.sheet,
                columns=dict(upload.columns),
                report_path=report,
                run_id=run_id,
            )
    except PaybatchError as exc:
        return Check(problem=str(exc), fix=fix_for(str(exc)))
    assert result.paths is not None
    refused, refused_total = _refused_rows(result.paths)
    log.info("checked", extra={"input": upload.path.name, "counts": result.counts})
    return Check(
        counts=result.counts,
        paths=result.paths,
        refused=tuple(refused),
        refused_total=refused_total,
        server_checked=server_problem == "" and api_config is not None,
        server_problem=server_problem,
    )
