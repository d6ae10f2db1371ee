"""The JSON run summary: one small file cron and monitoring can parse without opening the report."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from batch import __version__
from batch.errors import FileSystemError
from batch.report._atomic import write_text_atomically
from batch.report._paths import ReportPaths
from batch.report._summary_sheet import RunInfo, utc_iso

SCHEMA_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class RunSummary:
    """What a run did, in numbers; `duration_s` is derived from the two timestamps."""

    run_id: str
    exit_code: int
    counts: Mapping[str, int]  # rows by status value
    error_counts: Mapping[str, int]  # rows by error code
    report: ReportPaths | None  # None when no report was written
    started_at: datetime
    finished_at: datetime
    input_path: Path
    input_sha256: str
    environment: str
    api_host: str
    tool_version: str = __version__
    requests: Mapping[str, int] = field(default_factory=dict)  # e.g. sent, 429, lookups

    @classmethod
    def from_run(
        cls,
        info: RunInfo,
        *,
        exit_code: int,
        counts: Mapping[str, int],
        error_counts: Mapping[str, int],
        report: ReportPaths | None,
        requests: Mapping[str, int] | None = None,
    ) -> RunSummary:
        """Build a summary from the same RunInfo the report was committed with."""
        return cls(
            run_id=info.run_id,
            exit_code=exit_code,
            counts=counts,
            error_counts=error_counts,
            report=report,
            started_at=info.started_at,
            finished_at=info.finished_at,
            input_path=info.input_path,
            input_sha256=info.input_sha256,
            environment=info.environment,
            api_host=info.api_host,
            tool_version=info.tool_version,
            requests=requests or {},
        )

    @property
    def duration_s(self) -> float:
        """Seconds from start to finish."""
        return (self.finished_at - self.started_at).total_seconds()

    def to_json(self) -> dict[str, Any]:
        """The JSON document, with a schema_version so consumers can notice changes."""
        return {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "exit_code": self.exit_code,
            "started_at": utc_iso(self.started_at),
            "finished_at": utc_iso(self.finished_at),
            "duration_s": round(self.duration_s, 3),
            "input": {"path": str(self.input_path), "sha256": self.input_sha256},
            "environment": self.environment,
            "api_host": self.api_host,
            "tool_version": self.tool_version,
            "counts": dict(self.counts),
            "total_rows": sum(self.counts.values()),
            "error_counts": dict(self.error_counts),
            "report": None
            if self.report is None
            else {
                "csv": str(self.report.csv),
                "xlsx": None if self.report.xlsx is None else str(self.report.xlsx),
                "errors": str(self.report.errors),
            },
            "requests": dict(self.requests),
        }


def write_summary_json(path: Path, summary: RunSummary | Mapping[str, Any]) -> None:
    """Write the summary as pretty JSON, atomically (readers never see half a file).

    `-` is standard output; everything paybatch says to people goes to stderr.
    """
    doc = summary.to_json() if isinstance(summary, RunSummary) else dict(summary)
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if str(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        write_text_atomically(path, text)
    except OSError as exc:
        raise FileSystemError.wrap("the run summary", path, exc) from None


def reconcile_summary(
    *,
    run_id: str,
    exit_code: int,
    checked: int,
    mismatched: int,
    report: Path,
    state_path: Path | None,
    started_at: datetime,
    finished_at: datetime,
) -> dict[str, Any]:
    """The `paybatch reconcile --summary-json` document."""
    return {
        "schema_version": SCHEMA_VERSION,
        "command": "reconcile",
        "run_id": run_id,
        "exit_code": exit_code,
        "started_at": utc_iso(started_at),
        "finished_at": utc_iso(finished_at),
        "state": str(state_path) if state_path else None,  # None: the run's default
        "checked": checked,
        "mismatched": mismatched,
        "report": {"csv": str(report)},
        "tool_version": __version__,
    }
