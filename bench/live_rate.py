"""The client's CPU at a live rate: 200 requests a minute, 40-160 ms of latency.

    .venv/bin/python bench/live_rate.py [--rows 250] [--rate-limit 10/3s]

The sandbox runs in its own process in live mode (Commerce Layer's live windows, 200/60 s
and 50/10 s) with 40-160 ms of jittered latency. paybatch runs as a subprocess told
10 requests every 3 s, which is 200 a minute spread evenly, so 250 rows take about 75 s.
Its CPU (user + system, start-up included) divided by its wall time is the share of one
core it used. Prints one Markdown table; the target is at most 3% of one core.
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
from pathlib import Path

from sandbox_process import sandbox, seen

LATENCY_MS = "40,160"
TARGET_SHARE = 0.03


def write_orders(path: Path, rows: int) -> int:
    """An input file of `rows` distinct orders."""
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["Order ID", "Payment Source Token", "Reference"])
        out.writerows([f"LR{i:07d}", f"tok_live_{i:07d}", f"LIVE-{i}"] for i in range(rows))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=250, help="rows to create")
    parser.add_argument("--rate-limit", default="10/3s", help="what paybatch is told")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    with (
        tempfile.TemporaryDirectory() as tmp,
        sandbox(["--mode", "live", "--latency-ms", LATENCY_MS]) as server,
    ):
        work = Path(tmp)
        wanted = write_orders(work / "orders.csv", args.rows)
        command = [sys.executable, "-m", "batch", "run", str(work / "orders.csv")]
        command += ["--state", str(work / "state.sqlite"), "--report", str(work / "r.csv")]
        command += ["--no-xlsx", "-q", "--no-progress", "--rate-limit", args.rate_limit]
        # Only paybatch is reaped in between: the sandbox is still running, so it is not counted.
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(command, env={**os.environ, **server.env}, check=False)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        log = seen(server.requests())
        created = sum(len(p) for p in server.payments_by_order().values())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    share = cpu / wall
    verdict = "PASS" if share <= TARGET_SHARE and done.returncode == 0 else "FAIL"
    if done.returncode or created != wanted:
        verdict += f" (exit {done.returncode}, {created}/{wanted} created)"
    posts = [at for at, endpoint in log.accepted if endpoint == "POST /api/external_payments"]
    first_to_last = posts[-1] - posts[0] if len(posts) > 1 else 0.0
    rate = (len(posts) - 1) / first_to_last * 60 if first_to_last else 0.0
    cells = [
        ("case", "rows", "wall", "POSTs/min", "CPU", "CPU % of one core", "target", "result"),
        (
            f"paybatch, live sandbox, told {args.rate_limit}",
            str(args.rows),
            f"{wall:.1f} s",
            f"{rate:.0f}",
            f"{cpu:.2f} s",
            f"{share:.2%}",
            f"≤ {TARGET_SHARE:.0%}",
            verdict,
        ),
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    for n, row in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


if __name__ == "__main__":
    main()
