"""The Summary sheet: what the run was, in words a finance team reads, and its counts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from batch import __version__
from batch.report._cells import neutralise
from batch.rows import RowStatus

RUN_STATUSES = tuple(s for s in RowStatus if s is not RowStatus.VALID)
VALIDATE_STATUSES = (RowStatus.VALID, RowStatus.INVALID, RowStatus.DUPLICATE)


def utc_iso(moment: datetime) -> str:
    """`2025-01-31T23:59:59Z`; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def local_time(moment: datetime) -> str:
    """`2025-02-01 00:59:59 (UTC+01:00)`: the machine's local time, with its offset."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone()
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M:%S} (UTC{offset[:3]}:{offset[3:]})"


def organization(api_host: str) -> str:
    """`acme` for `acme.commercelayer.io`; any other host is shown as it is."""
    host = api_host.split(":")[0]
    if host.endswith(".commercelayer.io"):
        return host.split(".")[0]
    return api_host


@dataclass(frozen=True, kw_only=True)
class RunInfo:
    """What the Summary sheet says about the run that produced the rows."""

    run_id: str
    started_at: datetime
    finished_at: datetime
    input_path: Path
    input_sha256: str
    environment: str  # "test" or "live"
    api_host: str
    tool_version: str = __version__
    kind: Literal["run", "validate"] = "run"
    state_path: Path | None = None
    note: str = ""  # why the report is unusual, e.g. built from the state file

    @property
    def organization(self) -> str:
        return organization(self.api_host)

    @property
    def duration_s(self) -> float:
        """Seconds from start to finish."""
        return (self.finished_at - self.started_at).total_seconds()


# The Summary sheet's words for each status.
STATUS_LABELS = {
    RowStatus.CREATED: "Rows created",
    RowStatus.ALREADY_CREATED: "Rows already created (earlier runs)",
    RowStatus.FAILED: "Rows failed",
    RowStatus.INVALID: "Rows invalid (not sent)",
    RowStatus.DUPLICATE: "Rows duplicate (not sent)",
    RowStatus.NOT_ATTEMPTED: "Rows not attempted",
    RowStatus.VALID: "Rows valid",
    RowStatus.SKIPPED: "Rows skipped (a repeated header line)",
}
KIND_LABELS = {"run": "paybatch run", "validate": "paybatch validate (nothing sent)"}


def summary_lines(
    info: RunInfo,
    counts: Mapping[str, int],
    error_counts: Mapping[str, int],
    to_do: int,
) -> list[list[str | float]]:
    """The Summary sheet, line by line: [label, value], or [heading] alone."""
    statuses = RUN_STATUSES if info.kind == "run" else VALIDATE_STATUSES
    shown = [str(s) for s in statuses] + sorted(set(counts) - set(map(str, statuses)))
    lines: list[list[str | float]] = [
        ["Command", KIND_LABELS[info.kind]],
        ["Organization", info.organization or "(none: offline check)"],
        ["Environment", info.environment],
        ["Input file", str(info.input_path)],
        ["State file", "" if info.state_path is None else str(info.state_path)],
        ["Started", local_time(info.started_at)],
        ["Finished", local_time(info.finished_at)],
        ["Duration (seconds)", round(info.duration_s, 1)],
    ]
    if info.note:
        lines.append(["Note", info.note])
    lines += [[], ["Rows by status"]]
    lines += [[_status_label(status), counts.get(status, 0)] for status in shown]
    lines.append(["Total rows", sum(counts.values())])
    lines.append(["Rows that need someone", to_do])
    lines.append(["", "listed on the Errors sheet and in the -errors.csv file"])
    if error_counts:
        lines += [[], ["Rows by error code"]]
        lines += [[code, n] for code, n in sorted(error_counts.items(), key=_by_count)]
    lines += [
        [],
        ["Details"],
        ["Run ID", info.run_id],
        ["Input SHA-256", info.input_sha256],
        ["API host", info.api_host],
        ["paybatch version", info.tool_version],
    ]
    return [[neutralise(v) if isinstance(v, str) else v for v in line] for line in lines]


def _status_label(status: str) -> str:
    try:
        return STATUS_LABELS[RowStatus(status)]
    except ValueError:
        return f"Rows {status}"


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return (-item[1], item[0])
