"""The reconciliation report: a streamed CSV, an error file, an XLSX and a JSON run summary.

ReportWriter        one row at a time into a staging directory; commit() renames atomically
RunInfo             what the Summary sheet says about the run
ReportPaths         where commit() put the files (CSV, XLSX, `<stem>-errors.csv`)
RunSummary          the machine-readable outcome for cron, via write_summary_json()
check_run_paths     before the first POST: can every file of the run be written?
what_to_do          the error file's plain-English advice for a status and error code
neutralise          the formula-injection guard applied to every text cell
"""

from batch.report._advice import needs_a_person, what_to_do
from batch.report._cells import neutralise
from batch.report._paths import (
    ReportPaths,
    check_run_paths,
    check_writable,
    default_report_path,
    remove_stale_staging,
    report_files,
)
from batch.report._summary import RunSummary, reconcile_summary, write_summary_json
from batch.report._summary_sheet import RunInfo, organization
from batch.report._table import write_table
from batch.report._writer import ReportWriter

__all__ = [
    "ReportPaths",
    "ReportWriter",
    "RunInfo",
    "RunSummary",
    "check_run_paths",
    "check_writable",
    "default_report_path",
    "needs_a_person",
    "neutralise",
    "organization",
    "reconcile_summary",
    "remove_stale_staging",
    "report_files",
    "what_to_do",
    "write_summary_json",
    "write_table",
]
