"""Time reading a 1,000,000-row CSV through `open_input(...).rows()`; print time and peak RSS.

Targets on the 2-core dev machine: at most 30 s and 500 MB.
"""

from __future__ import annotations

import argparse
import csv
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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
    print(f"rows: {read:,} ({size_mb:.0f} MB file)")
    print(f"elapsed: {elapsed:.2f} s")
    print(f"rows/s: {read / elapsed:,.0f}")
    print(f"peak RSS: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
