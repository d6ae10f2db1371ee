"""Validation at scale: a generated 1,000,000-row CSV and a 200,000-row XLSX; time and peak RSS.

CSV: reading and checking every row (`open_input(...).rows()`, in-process), and the whole
`paybatch validate` command writing its CSV report (a subprocess, whose peak RSS is its
own). Targets on the 2-core dev machine: at most 30 s and 500 MB.
XLSX: `paybatch validate --no-xlsx` on the workbook, at most 10 s and 300 MB, and beside
it the same command writing the XLSX report as well (no target: that is the report's cost).
With --xlsx the CSV's validate also writes the XLSX report, which costs far more.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import xlsxwriter

from batch.inputs import open_input

HEADER = ["Order ID", "Payment Source Token", "Reference", "Metadata", "Notes"]


def order_rows(rows: int) -> Iterator[list[str]]:
    """A realistic export's rows: JSON metadata and a notes column, mostly filled."""
    for i in range(rows):
        yield [
            f"ORD-{i:08d}",
            f"tok_{i:016x}",
            f"INV-{i}",
            f'{{"batch": "2024-03", "line": {i}}}',
            "paid by wire" if i % 7 else "",
        ]


def write_orders(path: Path, rows: int) -> None:
    """A realistic CSV export: BOM, human headers."""
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(order_rows(rows))


def write_workbook(path: Path, rows: int) -> None:
    """The same rows as an XLSX workbook with a title row above the header."""
    book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = book.add_worksheet("Orders")
    sheet.write_row(0, 0, ["Payouts, March"])
    sheet.write_row(1, 0, HEADER)
    for r, row in enumerate(order_rows(rows), start=2):
        sheet.write_row(r, 0, row)
    book.close()


def run_child(command: list[str]) -> tuple[float, float, int]:
    """Seconds, this child's own peak RSS in MB, and its exit code."""
    start = time.perf_counter()
    child = subprocess.Popen(command)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss / 1024, child.returncode  # KiB on Linux


def validate(path: Path, report: Path, *, xlsx: bool) -> list[str]:
    command = [sys.executable, "-m", "batch", "validate", str(path), "-q"]
    command += ["--report", str(report)]
    return command if xlsx else [*command, "--no-xlsx"]


def line(
    name: str, seconds: float, rows: int, peak_mb: float, target: tuple[float, float] | None
) -> str:
    if target is None:
        goal, verdict = "(report cost)", ""
    else:
        goal = f"<={target[0]:.0f}s <={target[1]:.0f}MB"
        verdict = "PASS" if seconds <= target[0] and peak_mb <= target[1] else "MISS"
    return f"{name:<52} {seconds:8.2f} {rows / seconds:9,.0f} {peak_mb:8.0f} {goal:>14} {verdict}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="CSV rows")
    parser.add_argument("--xlsx-rows", type=int, default=200_000, help="XLSX rows (0: skip)")
    parser.add_argument("--xlsx", action="store_true", help="CSV: also write the XLSX report")
    args = parser.parse_args()
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "orders.csv"
        write_orders(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        start = time.perf_counter()
        read = sum(1 for _ in open_input(path).rows())
        elapsed = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        lines.append(
            line("CSV: read + check every row (in-process)", elapsed, read, peak_mb, (30, 500))
        )
        report = "CSV + XLSX report" if args.xlsx else "CSV report"
        seconds, mb, code = run_child(validate(path, Path(tmp) / "report.csv", xlsx=args.xlsx))
        lines.append(
            line(f"CSV: paybatch validate, {report} (exit {code})", seconds, read, mb, (30, 500))
        )
        path.unlink()
        if args.xlsx_rows:
            book = Path(tmp) / "orders.xlsx"
            write_workbook(book, args.xlsx_rows)
            book_mb = book.stat().st_size / 1e6
            for xlsx, target in ((False, (10.0, 300.0)), (True, None)):
                report = "CSV + XLSX report" if xlsx else "--no-xlsx"
                out = Path(tmp) / f"book-report-{xlsx}.csv"
                seconds, mb, code = run_child(validate(book, out, xlsx=xlsx))
                name = f"XLSX: paybatch validate, {report} (exit {code})"
                lines.append(line(name, seconds, args.xlsx_rows, mb, target))
    print(f"CSV rows: {read:,} ({size_mb:.0f} MB file)", end="")
    print(f"; XLSX rows: {args.xlsx_rows:,} ({book_mb:.0f} MB file)" if args.xlsx_rows else "")
    print(f"{'measurement':<52} {'seconds':>8} {'rows/s':>9} {'peak MB':>8} {'target':>14}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
