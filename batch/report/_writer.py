"""ReportWriter: stream ReportRows into a CSV, an error file and an XLSX, published atomically."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from batch.errors import FileSystemError
from batch.report import _cells
from batch.report._advice import needs_a_person
from batch.report._atomic import Staging, fsync
from batch.report._csv import CsvReport
from batch.report._paths import ReportPaths, report_files
from batch.report._summary_sheet import RunInfo, summary_lines
from batch.report._xlsx import DEFAULT_SHEET_ROW_CAP, XlsxReport
from batch.rows import ReportRow


class ReportWriter:
    """Write the reconciliation report one row at a time; nothing is at the final path until commit.

    `path` is the CSV, or the XLSX when it ends in .xlsx (any case); the CSV, the XLSX and
    the error file `<stem>-errors.csv` go side by side, replacing any files of those names
    (`default_report_path()` picks names nobody has taken).

    Use it as a context manager: leaving the block with an exception aborts, leaving it
    normally without commit() aborts too (a report nobody committed is not a report).
    """

    def __init__(
        self,
        path: Path,
        *,
        extra_headers: Sequence[str],
        xlsx: bool = True,
        sheet_row_cap: int = DEFAULT_SHEET_ROW_CAP,
    ) -> None:
        self._path = Path(path)
        self._xlsx_wanted = xlsx
        names = report_files(self._path, xlsx=xlsx)
        self._extra_headers = tuple(extra_headers)
        self._counts: Counter[str] = Counter()
        self._error_counts: Counter[str] = Counter()
        self._to_do = 0
        self._done = False
        if not 1 <= sheet_row_cap <= DEFAULT_SHEET_ROW_CAP:
            raise ValueError(f"sheet_row_cap must be between 1 and {DEFAULT_SHEET_ROW_CAP}")
        self._xlsx: XlsxReport | None = None
        with _file_system(names.csv):
            self._staging = Staging(names.csv.parent)
        self._staged = {
            "csv": self._staging.file("report.csv"),
            "xlsx": self._staging.file("report.xlsx"),
            "errors": self._staging.file("errors.csv"),
        }
        try:
            with _file_system(names.csv):
                self._csv = CsvReport(self._staged["csv"], _cells.header(self._extra_headers))
                error_header = _cells.error_header(self._extra_headers)
                self._errors = CsvReport(self._staged["errors"], error_header)
                if xlsx:
                    self._xlsx = XlsxReport(
                        self._staged["xlsx"],
                        _cells.header(self._extra_headers),
                        error_header=error_header,
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

    @property
    def to_do(self) -> int:
        """Rows written to the error file so far."""
        return self._to_do

    def write(self, row: ReportRow) -> None:
        """Append one row (and to the error file, when it needs a person)."""
        if self._done:
            raise RuntimeError("the report is already committed or aborted")
        cells = _cells.cells(row, self._extra_headers)
        with _file_system(self._path):
            self._csv.write(cells)
            if self._xlsx is not None:
                self._xlsx.write(cells)
            if needs_a_person(row.status, row.error_code):
                errors = _cells.error_cells(row, self._extra_headers)
                self._errors.write(errors)
                if self._xlsx is not None:
                    self._xlsx.write_error(errors)
                self._to_do += 1
        self._counts[str(row.status)] += 1
        if row.error_code:
            self._error_counts[row.error_code] += 1

    def commit(self, info: RunInfo) -> ReportPaths:
        """Finish the files, fsync them and move them into place (the CSV last)."""
        if self._done:
            raise RuntimeError("the report is already committed or aborted")
        self._done = True
        try:
            with _file_system(self._path):
                self._csv.close()
                self._errors.close()
                if self._xlsx is not None:
                    self._xlsx.close(
                        summary_lines(info, self._counts, self._error_counts, self._to_do)
                    )
                paths = report_files(self._path, xlsx=self._xlsx_wanted)
                # The CSV is the file cron looks for, so it appears last: if it is there, so
                # are the others.
                if paths.xlsx is not None:
                    self._staging.publish(self._staged["xlsx"], paths.xlsx)
                self._staging.publish(self._staged["errors"], paths.errors)
                self._staging.publish(self._staged["csv"], paths.csv)
                fsync(paths.csv.parent)
        finally:
            self._release()
        return paths

    def abort(self) -> None:
        """Drop everything written so far; the final paths are left untouched (idempotent)."""
        self._done = True
        self._release()

    def _release(self) -> None:
        for part in ("_csv", "_errors"):
            report = getattr(self, part, None)
            if report is not None:
                report.close()
        try:
            if self._xlsx is not None:
                self._xlsx.discard()
        finally:
            self._staging.discard()


@contextmanager
def _file_system(path: Path) -> Iterator[None]:
    """An OSError while writing the report becomes one line naming the path and the cause."""
    try:
        yield
    except OSError as exc:
        raise FileSystemError.wrap("the report", path, exc) from None
