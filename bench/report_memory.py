"""Rough check that the report writer streams: peak RSS should stay flat as rows grow.

.venv/bin/python bench/report_memory.py [ROWS]
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from batch.report import ReportWriter, RunInfo
from batch.rows import ReportRow, RowStatus


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(rows: int) -> None:
    statuses = list(RowStatus)
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "bench.csv"
        with ReportWriter(target, extra_headers=["customer", "note"]) as w:
            for i in range(rows):
                w.write(
                    ReportRow(
                        row=i + 2,
                        order_id=f"ord{i:09d}",
                        status=statuses[i % len(statuses)],
                        payment_source_token=f"tok_{i:020d}",
                        external_payment_id=f"xp{i}",
                        http_status=201,
                        error_detail="" if i % 10 else "order is placed; =not a formula",
                        attempts=1,
                        extra={"customer": f"c{i % 997}", "note": "n" * (i % 40)},
                    )
                )
                if (i + 1) % max(rows // 5, 1) == 0:
                    print(f"{i + 1:>10} rows  peak RSS {peak_rss_mb():7.1f} MB")
            info = RunInfo(
                run_id="bench",
                started_at=started,
                finished_at=datetime.now(UTC),
                input_path=Path("bench.csv"),
                input_sha256="0" * 64,
                environment="test",
                api_host="127.0.0.1",
            )
            paths = w.commit(info)
        assert paths.xlsx is not None
        size = paths.csv.stat().st_size + paths.xlsx.stat().st_size
    elapsed = time.perf_counter() - t0
    print(
        f"done: {rows} rows in {elapsed:.1f}s, {size / 1e6:.1f} MB on disk, "
        f"peak RSS {peak_rss_mb():.1f} MB"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
