"""The report, rebuilt after sending: from the input and the state file, row by row.

    write_report(input, journal, ...)      every input row in order, its status from the journal
    write_state_report(journal, ...)       the rows a run reached, from the journal alone
                                           (when the input changed or broke mid-run)

Both publish atomically through `ReportWriter`; memory follows the chunk size, not the file.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

from batch.inputs import InputFile
from batch.journal import AsyncJournal, Journal
from batch.outcomes import report_row, state_row
from batch.report import ReportPaths, ReportWriter, RunInfo
from batch.rows import InputRow, RowProblem

log = logging.getLogger(__name__)

REPORT_CHUNK = 500


async def write_report(
    input_file: InputFile,
    journal: AsyncJournal | None,
    run_id: str,
    path: Path,
    *,
    xlsx: bool,
    info: RunInfo,
) -> tuple[ReportPaths, Counter[str], Counter[str]]:
    """Build the report from the journal, row by row in input order, and commit it atomically."""
    with ReportWriter(path, extra_headers=input_file.carried_headers, xlsx=xlsx) as writer:
        for chunk in chunks(input_file.rows(), REPORT_CHUNK):
            if input_file.match == "number" and journal is not None:
                chunk = await _with_order_ids(chunk, journal)
            ids = [row.order_id for row in chunk if row.problem is None]
            records = (
                await journal.read(partial(Journal.get_many, order_ids=ids)) if journal else {}
            )
            for row in chunk:
                writer.write(report_row(row, records.get(row.order_id), run_id=run_id))
        paths = writer.commit(info)
        return paths, Counter(writer.counts), Counter(writer.error_counts)


async def _with_order_ids(chunk: list[InputRow], journal: AsyncJournal) -> list[InputRow]:
    """--match number: each row with the order ID its number resolved to, or, when it did
    not resolve, with the problem the server check recorded (not found, ambiguous, a
    number of an order an earlier row holds)."""
    numbers = [row.order_number for row in chunk if row.problem is None]
    found = await journal.read(lambda j: j.numbers(numbers))
    out: list[InputRow] = []
    for row in chunk:
        resolution = found.get(row.order_number) if row.problem is None else None
        if resolution is None:
            out.append(row)
        elif resolution.order_id:
            out.append(replace(row, order_id=resolution.order_id))
        else:
            out.append(replace(row, problem=RowProblem(resolution.code, resolution.detail)))
    return out


async def write_state_report(
    journal: AsyncJournal, run_id: str, path: Path, *, xlsx: bool, info: RunInfo, cause: str
) -> tuple[ReportPaths, Counter[str], Counter[str]]:
    """The report of the rows this run touched, from the state file alone (no input columns)."""
    records = await journal.read(Journal.records)
    mine = [r for r in records if run_id in (r.run_id, r.sent_run_id, r.created_run_id)]
    note = (
        f"built from the state file: {cause}. It lists the rows this run reached, without "
        "the input's columns; run the file again for the full report"
    )
    with ReportWriter(path, extra_headers=(), xlsx=xlsx) as writer:
        for record in sorted(mine, key=lambda r: r.row_number):
            writer.write(state_row(record, run_id=run_id))
        paths = writer.commit(replace(info, note=note))
    log.warning("report %s", note, extra={"report": str(paths.csv)})
    return paths, Counter(writer.counts), Counter(writer.error_counts)


def chunks(rows: Iterator[InputRow], size: int) -> Iterator[list[InputRow]]:
    chunk: list[InputRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
