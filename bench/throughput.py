"""Issue 14's throughput benchmark: paybatch against a strict sandbox, in every mode.

    .venv/bin/python bench/throughput.py [--rows 1000] [--runs 3] [--only CASE ...]

Every run gets a fresh sandbox process (`python -m batch.sandbox`, windows of 25/1 s per
endpoint and 100/6 s per class, 40-160 ms latency), a fresh state file and a fresh data
directory (so no send log from another case). Everything is measured at the server:

- the optimum is the greedy schedule of every request the run got accepted (writes and
  lookups alike), in arrival order, each endpoint under its burst window and all under
  the class window; with foreign traffic the class window is reduced by the foreign rate;
  for the rerun the schedule starts with what the first run's sends left in the windows;
- the span runs from the run's first request of any kind to its last accepted request;
- the 429 share is 429s over all /api/ requests of the run.

Each case runs `--runs` times and the table shows the worst utilisation and the worst
429 share; the case passes only if every run met the target. Always exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from baselines import gathered, sequential
from sandbox_process import Sandbox, Seen, sandbox, seen

from batch.ratelimit import Window

BURST = Window(25, 1.0)  # per endpoint
AVERAGE = Window(100, 6.0)  # per class
SERVER_ARGS = ("--limit", "25/1s:endpoint", "--limit", "100/6s:class", "--latency-ms", "40,160")
TOLD = ("25/1s", "100/6s")
MIS_TOLD = ("50/1s", "200/6s")  # twice the server's: paybatch has to learn from 429s
EXTRA: list[str] = []
FOREIGN = 30  # requests per AVERAGE window from another integration: 30% of it


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    told: tuple[str, ...]
    modes: tuple[str, ...]  # extra sandbox options
    utilisation: float
    throttled_share: float
    foreign: int = 0
    rerun: bool = False


CASES = (
    Case("told", "told the true limits", TOLD, (), 0.95, 0.0),
    Case("rerun", "told, started right after a full run", TOLD, (), 0.90, 0.03, rerun=True),
    Case(
        "mis-told-counted",
        "mis-told ×2, refused count, no Retry-After",
        MIS_TOLD,
        ("--count-rejected", "--no-retry-after"),
        0.85,
        0.03,
    ),
    Case(
        "mis-told-uncounted",
        "mis-told ×2, refused don't count, no Retry-After",
        MIS_TOLD,
        ("--no-retry-after",),
        0.85,
        0.03,
    ),
    Case(
        "foreign-headers",
        "told, 30% foreign traffic, headers on",
        TOLD,
        ("--foreign-rate", f"{FOREIGN}/6s"),
        0.80,
        0.03,
        foreign=FOREIGN,
    ),
    Case(
        "foreign-no-headers",
        "told, 30% foreign traffic, headers off",
        TOLD,
        ("--foreign-rate", f"{FOREIGN}/6s", "--no-ratelimit-headers"),
        0.70,
        0.05,
        foreign=FOREIGN,
    ),
)
BASELINES = ("sequential", "gather")


@dataclass(frozen=True)
class Measured:
    optimum: float
    span: float
    throttled: int
    api_requests: int
    damage: str

    @property
    def utilisation(self) -> float:
        return self.optimum / self.span if self.span > 0 else 0.0

    @property
    def share(self) -> float:
        return self.throttled / self.api_requests if self.api_requests else 0.0


def optimum(
    requests: Sequence[str],
    start: float,
    *,
    average: Window,
    history: Sequence[tuple[float, str]] = (),
) -> float:
    """Seconds from `start` to the greedy schedule's last send of `requests` (endpoints)."""
    by_endpoint: dict[str, list[float]] = {}
    every: list[float] = []
    for at, key in sorted(history):
        by_endpoint.setdefault(key, []).append(at)
        every.append(at)
    at = start
    for key in requests:
        mine = by_endpoint.setdefault(key, [])
        for window, log in ((BURST, mine), (average, every)):
            if len(log) >= window.limit:
                at = max(at, log[-window.limit] + window.seconds)
        mine.append(at)
        every.append(at)
    return at - start


def write_orders(path: Path, rows: int, tag: str) -> list[tuple[str, str]]:
    """An input file of `rows` distinct orders; returns (order id, token) pairs."""
    pairs = [(f"{tag}{i:07d}", f"tok_bench_{tag.lower()}_{i:07d}") for i in range(rows)]
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["Order ID", "Payment Source Token", "Reference"])
        out.writerows([order_id, token, f"BENCH-{order_id}"] for order_id, token in pairs)
    return pairs


def run_paybatch(server: Sandbox, work: Path, home: Path, name: str, told: Sequence[str]) -> int:
    """`python -m batch run` in a subprocess with its own state file; its exit code."""
    command = [sys.executable, "-m", "batch", "run", str(work / f"{name}.csv")]
    command += ["--state", str(work / f"{name}.sqlite"), "--report", str(work / f"{name}.out")]
    command += ["--no-xlsx", "-q", "--no-progress", *EXTRA]
    for limit in told:
        command += ["--rate-limit", limit]
    env = {**os.environ, **server.env, "PAYBATCH_HOME": str(home)}
    return subprocess.run(command, env=env, check=False, stdout=subprocess.DEVNULL).returncode


def exactly_once(server: Sandbox, pairs: Sequence[tuple[str, str]]) -> str:
    """'' when every order has exactly one payment, else a short description of the damage."""
    by_order = server.payments_by_order()
    missing = sum(1 for order_id, _ in pairs if order_id not in by_order)
    doubled = sum(1 for order_id, _ in pairs if len(by_order.get(order_id, [])) > 1)
    return f"{missing} missing, {doubled} doubled" if missing or doubled else ""


def measure(
    case: Case, part: Seen, damage: str, history: Sequence[tuple[float, str]] = ()
) -> Measured:
    average = Window(AVERAGE.limit - case.foreign, AVERAGE.seconds)
    keys = [key for _, key in part.accepted]
    best = optimum(keys, part.first_at, average=average, history=history)
    return Measured(best, part.span, part.throttled, part.api_requests, damage)


def paybatch_run(case: Case, rows: int) -> Measured:
    counted = "--count-rejected" in case.modes
    with (
        tempfile.TemporaryDirectory() as tmp,
        sandbox([*SERVER_ARGS, *case.modes]) as server,
    ):
        work, home = Path(tmp), Path(tmp) / "home"
        history: list[tuple[float, str]] = []
        start = 0
        if case.rerun:
            write_orders(work / "first.csv", rows, "PF")
            run_paybatch(server, work, home, "first", case.told)
            log = server.requests()
            history = seen(log, rejected_count=counted).counted
            start = len(log)
        pairs = write_orders(work / "run.csv", rows, "PB")
        code = run_paybatch(server, work, home, "run", case.told)
        part = seen(server.requests()[start:], rejected_count=counted)
        damage = exactly_once(server, pairs) or (f"exit {code}" if code else "")
    return measure(case, part, damage, history)


def baseline_run(
    name: str,
    rows: int,
    client: Callable[[Mapping[str, str], Sequence[tuple[str, str]]], Coroutine[None, None, None]],
) -> Measured:
    case = Case(name, name, (), (), 0.0, 1.0)
    with tempfile.TemporaryDirectory() as tmp, sandbox(list(SERVER_ARGS)) as server:
        pairs = write_orders(Path(tmp) / "orders.csv", rows, "BL")
        asyncio.run(client(server.env, pairs))
        part = seen(server.requests())
        damage = exactly_once(server, pairs)
    return measure(case, part, damage)


HEADERS = ("case", "runs", "optimum", "span (worst)", "utilisation (worst)", "429s (worst)")
HEADERS += ("target", "result")


def line(case: Case, runs: Sequence[Measured], *, baseline: bool = False) -> tuple[str, ...]:
    worst = min(runs, key=lambda m: m.utilisation)
    most = max(runs, key=lambda m: m.share)
    every = ", ".join(f"{m.utilisation:.3f}" for m in runs)
    if baseline:
        goal, verdict = "–", "baseline"
    else:
        goal = f"≥ {case.utilisation:.2f}, 429 ≤ {case.throttled_share:.0%}"
        met = all(
            m.utilisation >= case.utilisation and m.share <= case.throttled_share and not m.damage
            for m in runs
        )
        verdict = "PASS" if met else "FAIL"
    damage = sorted({m.damage for m in runs if m.damage})
    if damage:
        verdict += f" ({'; '.join(damage)})"
    return (
        case.description,
        str(len(runs)),
        f"{worst.optimum:.2f} s",
        f"{worst.span:.2f} s",
        f"{worst.utilisation:.3f} (runs: {every})",
        f"{most.throttled}/{most.api_requests} ({most.share:.1%})",
        goal,
        verdict,
    )


def print_table(rows: Sequence[tuple[str, ...]]) -> None:
    cells = [HEADERS, *rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADERS))]

    def show(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    print(show(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print(show(row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000, help="rows per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per case; the worst is shown")
    names = [c.name for c in CASES]
    parser.add_argument(
        "--only",
        choices=[*names, *BASELINES],
        action="append",
        help="run only these cases (repeatable; the baselines run only when named)",
    )
    args = parser.parse_args()
    wanted = args.only or names
    print(
        f"sandbox {' '.join(SERVER_ARGS)}; {args.rows} rows, {args.runs} runs per case; "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    table = []
    for case in CASES:
        if case.name in wanted:
            runs = []
            for i in range(args.runs):
                runs.append(paybatch_run(case, args.rows))
                m = runs[-1]
                print(
                    f"  {case.name} run {i + 1}: optimum {m.optimum:.2f} s, span {m.span:.2f} s, "
                    f"utilisation {m.utilisation:.3f}, 429s {m.throttled}/{m.api_requests}"
                    f"{', ' + m.damage if m.damage else ''}",
                    flush=True,
                )
            table.append(line(case, runs))
    for name, client in (("sequential", sequential), ("gather", gathered)):
        if name in wanted:
            case = Case(name, f"baseline: {name}", (), (), 0.0, 1.0)
            runs = [baseline_run(name, args.rows, client) for _ in range(args.runs)]
            table.append(line(case, runs, baseline=True))
    print_table(table)


if __name__ == "__main__":
    main()
