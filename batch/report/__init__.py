"""The reconciliation report: a streamed CSV, an XLSX beside it and a JSON run summary.

ReportWriter        one row at a time into a staging directory; commit() renames atomically
RunInfo             what the Summary sheet says about the run
ReportPaths         where commit() put the files
RunSummary          the machine-readable outcome for cron, via write_summary_json()
neutralise          the formula-injection guard applied to every text cell
"""

from batch.report._cells import neutralise
from batch.report._summary import RunSummary, write_summary_json
from batch.report._table import write_table
from batch.report._writer import ReportPaths, ReportWriter, RunInfo, default_report_path

__all__ = [
    "ReportPaths",
    "ReportWriter",
    "RunInfo",
    "RunSummary",
    "default_report_path",
    "neutralise",
    "write_summary_json",
    "write_table",
]
