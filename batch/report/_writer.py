"""ReportWriter: stream ReportRows into a CSV (and an XLSX beside it), published atomically."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Literal

from batch import __version__
from batch.report import _cells
from batch.report._atomic import Staging, fsync
from batch.report._csv import CsvReport
from batch.report._xlsx import DEFAULT_SHEET_ROW_CAP, XlsxReport
from batch.rows import ReportRow, RowStatus

RUN_STATUSES = tuple(s for s in RowStatus if s is not RowStatus.VALID)
VALIDATE_STATUSES = (RowStatus.VALID, RowStatus.INVALID, RowStatus.DUPLICATE)


def utc_iso(moment: datetime) -> str:
    """`2025-01-31T23:59:59Z`; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


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
    state_file: Path | None = None

    @property
    def duration_s(self) -> float:
        """Seconds from start to finish."""
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class ReportPaths:
    """Where a committed report lives."""

    csv: Path
    xlsx: Path | None


def default_report_path(input_path: Path, now: datetime, directory: Path = Path("reports")) -> Path:
    """`reports/<input-stem>-<UTC yyyymmddTHHMMSSZ>.csv`."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return directory / f"{input_path.stem}-{stamp}.csv"


class ReportWriter:
    """Write the reconciliation report one row at a time; nothing is at the final path until commit.

    Use it as a context manager: leaving the block with an exception aborts, leaving it
    normally without commit() aborts too (a report nobody committed is not a report).
    """

    def __init__(
        self,
        csv_path: Path,
        *,
        extra_headers: Sequence[str],
        xlsx: bool = True,
        sheet_row_cap: int = DEFAULT_SHEET_ROW_CAP,
    ) -> None:
        self._csv_path = csv_path
        self._xlsx_path = csv_path.with_suffix(".xlsx") if xlsx else None
        self._extra_headers = tuple(extra_headers)
        self._counts: Counter[str] = Counter()
        self._error_counts: Counter[str] = Counter()
        self._done = False
        header = _cells.header(self._extra_headers)
        if self._xlsx_path == csv_path:
            raise ValueError("the CSV report path must not end in .xlsx")
        if not 1 <= sheet_row_cap <= DEFAULT_SHEET_ROW_CAP:
            raise ValueError(f"sheet_row_cap must be between 1 and {DEFAULT_SHEET_ROW_CAP}")
        self._staging = Staging(csv_path.parent)
        self._xlsx: XlsxReport | None = None
        try:
            self._csv = CsvReport(self._staging.file(csv_path.name), header)
        except BaseException:
            self._staging.discard()
            raise
        try:
            if self._xlsx_path is not None:
                self._xlsx = XlsxReport(
                    self._staging.file(self._xlsx_path.name),
                    header,
                    tmpdir=self._staging.path,
                    sheet_row_cap=sheet_row_cap,
                )
        except BaseException:
            self._release()
            raise

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            self.abort()

    @property
    def counts(self) -> Mapping[str, int]:
        """Rows written so far, by status value."""
        return dict(self._counts)

    @property
    def error_counts(self) -> Mapping[str, int]:
        """Rows written so far, by error code (rows without one are not counted)."""
        return dict(self._error_counts)

    def write(self, row: ReportRow) -> None:
        """Append one row."""
        if self._done:
            raise RuntimeError("the report is already committed or aborted")
        cells = _cells.cells(row, self._extra_headers)
        self._csv.write(cells)
        if self._xlsx is not None:
            self._xlsx.write(cells)
        self._counts[str(row.status)] += 1
        if row.error_code:
            self._error_counts[row.error_code] += 1

    def commit(self, info: RunInfo) -> ReportPaths:
        """Finish both files, fsync them and move them into place (XLSX first, CSV last)."""
        if self._done:
            raise RuntimeError("the report is already committed or aborted")
        self._done = True
        try:
            self._csv.close()
            if self._xlsx is not None:
                self._xlsx.close(self._summary_lines(info))
            # The CSV is the file cron looks for, so it appears last: if it is there, so is
            # the XLSX.
            if self._xlsx_path is not None:
                self._staging.publish(self._staging.file(self._xlsx_path.name), self._xlsx_path)
            self._staging.publish(self._staging.file(self._csv_path.name), self._csv_path)
            fsync(self._csv_path.parent)
        finally:
            self._release()
        return ReportPaths(csv=self._csv_path, xlsx=self._xlsx_path)

    def abort(self) -> None:
        """Drop everything written so far; the final paths are left untouched (idempotent)."""
        self._done = True
        self._release()

    def _release(self) -> None:
        self._csv.close()
        if self._xlsx is not None:
            try:
                self._xlsx.discard()
            finally:
                self._staging.discard()
        else:
            self._staging.discard()

    def _summary_lines(self, info: RunInfo) -> list[list[str | float]]:
        statuses = RUN_STATUSES if info.kind == "run" else VALIDATE_STATUSES
        shown = [str(s) for s in statuses] + sorted(set(self._counts) - set(map(str, statuses)))
        lines: list[list[str | float]] = [
            ["run_id", info.run_id],
            ["kind", info.kind],
            ["started_at", utc_iso(info.started_at)],
            ["finished_at", utc_iso(info.finished_at)],
            ["duration_s", round(info.duration_s, 3)],
            ["input_file", info.input_path.name],
            ["input_sha256", info.input_sha256],
            ["environment", info.environment],
            ["api_host", info.api_host],
            ["tool_version", info.tool_version],
            ["state_file", str(info.state_file or "")],
            [],
            ["status", "rows"],
        ]
        lines += [[status, self._counts.get(status, 0)] for status in shown]
        lines.append(["total", sum(self._counts.values())])
        if self._error_counts:
            lines += [[], ["error_code", "rows"]]
            lines += [[code, n] for code, n in sorted(self._error_counts.items(), key=_by_count)]
        return [[_cells.neutralise(v) if isinstance(v, str) else v for v in line] for line in lines]


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return (-item[1], item[0])
