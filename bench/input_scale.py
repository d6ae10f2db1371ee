"""Validation at scale: a generated 1,000,000-row CSV, read and checked; time and peak RSS.

Two measurements: reading and checking every row (`open_input(...).rows()`, in-process),
and the whole `paybatch validate` command writing its CSV report (a subprocess, whose peak
RSS is its own). Targets on the 2-core dev machine: at most 30 s and 500 MB.
With --xlsx the command also writes the XLSX report, which costs far more.
"""

from __future__ import annotations

import argparse
import csv
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from batch.inputs import open_input

HEADER = ["Order ID", "Payment Source Token", "Reference", "Metadata", "Notes"]


def write_orders(path: Path, rows: int) -> None:
    """A realistic export: BOM, human headers, JSON metadata, a notes column."""
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for i in range(rows):
            writer.writerow(
                [
                    f"ORD-{i:08d}",
                    f"tok_{i:016x}",
                    f"INV-{i}",
                    f'{{"batch": "2024-03", "line": {i}}}',
                    "paid by wire" if i % 7 else "",
                ]
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--xlsx", action="store_true", help="also write the XLSX report")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "orders.csv"
        write_orders(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        start = time.perf_counter()
        opened = open_input(path)
        read = sum(1 for _ in opened.rows())
        elapsed = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        command = [sys.executable, "-m", "batch", "validate", str(path), "-q"]
        command += ["--report", str(Path(tmp) / "report.csv")]
        if not args.xlsx:
            command.append("--no-xlsx")
        start = time.perf_counter()
        done = subprocess.run(command, check=False)
        validate_s = time.perf_counter() - start
        validate_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"rows: {read:,} ({size_mb:.0f} MB file)")
    print(f"{'measurement':<44} {'seconds':>8} {'rows/s':>9} {'peak MB':>8} {'target':>14}")
    verdict = "PASS" if elapsed <= 30 and peak_mb <= 500 else "MISS"
    print(
        f"{'read + check every row (in-process)':<44} {elapsed:8.2f} {read / elapsed:9,.0f}"
        f" {peak_mb:8.0f} {'<=30s <=500MB':>14} {verdict}"
    )
    report = "CSV + XLSX report" if args.xlsx else "CSV report"
    verdict = "PASS" if validate_s <= 30 and validate_mb <= 500 else "MISS"
    print(
        f"{'paybatch validate, ' + report + f' (exit {done.returncode})':<44} {validate_s:8.2f}"
        f" {read / validate_s:9,.0f} {validate_mb:8.0f} {'<=30s <=500MB':>14} {verdict}"
    )


if __name__ == "__main__":
    main()
