"""Issue 3's throughput benchmark: paybatch against the sandbox's scaled rate-limit windows.

    .venv/bin/python bench/throughput.py [--rows 300]

Every case gets a fresh sandbox process (`python -m batch.sandbox`) and a fresh state file.
Times are measured at the server: first to last accepted write, from its request log. The
minimum is `greedy_schedule(windows, N)[-1]`, the last send of the best possible schedule.
Prints one Markdown table with PASS/MISS per target and always exits 0: it is a measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from baselines import gathered, sequential
from sandbox_process import Sandbox, Writes, sandbox, writes

from batch.ratelimit import Window, greedy_schedule

# The sandbox's windows, scaled from Commerce Layer's 25/10s burst and 100/60s average.
SERVER_LIMITS = ("25/1s:endpoint", "100/6s:class")
SERVER_WINDOWS = (Window(25, 1.0), Window(100, 6.0))
LATENCY_MS = "40,160"
TOLD = ("25/1s", "100/6s")
MIS_TOLD = ("50/1s", "200/6s")  # twice the server's: paybatch has to learn from 429s


@dataclass(frozen=True)
class Target:
    utilisation: float
    throttled_share: float


TOLD_TARGET = Target(0.95, 0.01)
MIS_TOLD_TARGET = Target(0.80, 0.05)


@dataclass(frozen=True)
class Line:
    """One row of the printed table."""

    case: str
    rows: int
    minimum: str
    actual: str
    utilisation: str
    throttled: str
    target: str
    verdict: str


def write_orders(path: Path, rows: int, tag: str) -> list[tuple[str, str]]:
    """An input file of `rows` distinct orders; returns (order id, token) pairs."""
    pairs = [(f"{tag}{i:07d}", f"tok_bench_{tag.lower()}_{i:07d}") for i in range(rows)]
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["Order ID", "Payment Source Token", "Reference"])
        out.writerows([order_id, token, f"BENCH-{order_id}"] for order_id, token in pairs)
    return pairs


@dataclass(frozen=True)
class Process:
    exit_code: int
    wall: float
    cpu: float  # user + system seconds of the paybatch process


def run_paybatch(
    server: Sandbox, work: Path, input_path: Path, limits: Sequence[str], extra: Sequence[str] = ()
) -> Process:
    """`python -m batch run` in a subprocess with a fresh state file; its wall and CPU time."""
    command = [sys.executable, "-m", "batch", "run", str(input_path)]
    command += ["--state", str(work / "state.sqlite"), "--report", str(work / "report.csv")]
    command += ["--no-xlsx", "-q", "--no-progress", *extra]
    for limit in limits:
        command += ["--rate-limit", limit]
    env = {**os.environ, **server.env}
    # Only paybatch is reaped in between: the sandbox is still running, so it is not counted.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, check=False, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Process(done.returncode, wall, cpu)


def exactly_once(server: Sandbox, pairs: Sequence[tuple[str, str]]) -> str:
    """'' when every order has exactly one payment, else a short description of the damage."""
    by_order = server.payments_by_order()
    missing = sum(1 for order_id, _ in pairs if order_id not in by_order)
    doubled = sum(1 for payments in by_order.values() if len(payments) > 1)
    return f"{missing} missing, {doubled} doubled" if missing or doubled else ""


def limited_line(case: str, seen: Writes, rows: int, target: Target | None, note: str = "") -> Line:
    """A line for a case run against the scaled windows."""
    minimum = greedy_schedule(SERVER_WINDOWS, rows)[-1]
    utilisation = minimum / seen.first_to_last if seen.first_to_last > 0 else 0.0
    share = seen.throttled / seen.posts if seen.posts else 0.0
    if target is None:
        goal, verdict = "–", "baseline"
    else:
        goal = f"util ≥ {target.utilisation:.2f}, 429 ≤ {target.throttled_share:.0%}"
        met = utilisation >= target.utilisation and share <= target.throttled_share
        verdict = "PASS" if met else "MISS"
    if seen.accepted != rows:
        verdict += f" ({seen.accepted}/{rows} created)"
    if note:
        verdict += f" ({note})"
    return Line(
        case,
        rows,
        f"{minimum:.2f} s",
        f"{seen.first_to_last:.2f} s",
        f"{utilisation:.3f}",
        f"{seen.throttled} ({share:.1%})",
        goal,
        verdict,
    )


def paybatch_case(case: str, rows: int, limits: Sequence[str], target: Target) -> Line:
    server_args = [*_limit_args(), "--latency-ms", LATENCY_MS]
    with tempfile.TemporaryDirectory() as tmp, sandbox(server_args) as server:
        work = Path(tmp)
        pairs = write_orders(work / "orders.csv", rows, "PB")
        process = run_paybatch(server, work, work / "orders.csv", limits)
        seen = writes(server.requests())
        damage = exactly_once(server, pairs)
    note = damage or (f"exit {process.exit_code}" if process.exit_code else "")
    return limited_line(case, seen, rows, target, note)


def baseline_case(
    case: str,
    rows: int,
    client: Callable[[Mapping[str, str], Sequence[tuple[str, str]]], Coroutine[None, None, None]],
) -> Line:
    server_args = [*_limit_args(), "--latency-ms", LATENCY_MS]
    with tempfile.TemporaryDirectory() as tmp, sandbox(server_args) as server:
        pairs = write_orders(Path(tmp) / "orders.csv", rows, "BL")
        asyncio.run(client(server.env, pairs))
        seen = writes(server.requests())
        damage = exactly_once(server, pairs)
    return limited_line(case, seen, rows, None, damage)


def _limit_args() -> list[str]:
    return [arg for limit in SERVER_LIMITS for arg in ("--limit", limit)]


HEADERS = ("case", "N", "minimum", "actual", "utilisation", "429s", "target", "result")


def print_table(lines: Sequence[Line]) -> None:
    cells = [HEADERS] + [
        (
            x.case,
            str(x.rows),
            x.minimum,
            x.actual,
            x.utilisation,
            x.throttled,
            x.target,
            x.verdict,
        )
        for x in lines
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADERS))]

    def show(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    print(show(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print(show(row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300, help="rows in the rate-limited cases")
    parser.add_argument(
        "--only",
        choices=("told", "mis-told", "sequential", "gather"),
        action="append",
        help="run only these cases (repeatable)",
    )
    args = parser.parse_args()
    wanted = set(args.only or ("told", "mis-told", "sequential", "gather"))
    n = args.rows
    print(
        f"sandbox windows {', '.join(SERVER_LIMITS)}, latency {LATENCY_MS} ms; "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    lines: list[Line] = []
    if "told" in wanted:
        lines.append(paybatch_case("paybatch, told " + " ".join(TOLD), n, TOLD, TOLD_TARGET))
    if "mis-told" in wanted:
        case = "paybatch, mis-told " + " ".join(MIS_TOLD)
        lines.append(paybatch_case(case, n, MIS_TOLD, MIS_TOLD_TARGET))
    if "sequential" in wanted:
        lines.append(baseline_case("baseline: sequential loop", n, sequential))
    if "gather" in wanted:
        lines.append(baseline_case("baseline: gather, Semaphore(50)", n, gathered))
    print_table(lines)


if __name__ == "__main__":
    main()
