"""Shared by the end-to-end tests: input files, CLI invocations and the exactly-once audit.

The audit compares three things: the input (which orders must end with a payment), the
server (what the sandbox really holds) and the report (what paybatch says it did).
"""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batch.sandbox import SandboxServer

ROOT = Path(__file__).resolve().parent.parent
DONE = ("created", "already_created")

# Fast, unthrottled settings for a --no-limits sandbox: a 1 s client timeout (so a late
# answer becomes a lost one), half a second before an unknown is looked up.
FAST = (
    "--timeout",
    "1",
    "--settle-delay",
    "0.5",
    "--rate-limit",
    "100000/1s",
    "--no-xlsx",
    "--log-format",
    "json",
    "-q",
)


def order_ids(count: int, *, start: int = 1, prefix: str = "ORD") -> list[str]:
    """`ORD00001`, `ORD00002`, ...: ids an open-orders sandbox treats as pending orders."""
    return [f"{prefix}{n:05d}" for n in range(start, start + count)]


def token_for(order_id: str) -> str:
    """A token whose last 4 characters (all the report shows) identify the order."""
    return f"tok_{order_id.lower()}_{order_id[-4:]}"


@dataclass(frozen=True)
class InputFile:
    """A generated input: its path and the orders that must end with exactly one payment."""

    path: Path
    valid: dict[str, str]  # order id → the token of its first (sent) row
    refused_rows: int = 0


def write_orders(
    path: Path, orders: Sequence[str], *, refused: Iterable[tuple[str, str]] = ()
) -> InputFile:
    """A CSV of one row per order, then `refused` (order_id, token) rows appended at the end."""
    valid = {order: token_for(order) for order in orders}
    extra = list(refused)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["order_id", "payment_source_token", "reference"])
        for order, token in valid.items():
            writer.writerow([order, token, f"ref-{order}"])
        for order, token in extra:
            writer.writerow([order, token, f"ref-{order}-again"])
    return InputFile(path, valid, len(extra))


def read_report(path: Path) -> list[dict[str, str]]:
    """The report CSV (UTF-8 with BOM) as one dict per line."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


@dataclass
class Audit:
    """Exactly-once findings; `ok` when every list is empty."""

    rows: int
    duplicates: list[str] = field(default_factory=list)  # orders with more than one payment
    missing: list[str] = field(default_factory=list)  # valid orders with no payment
    strays: list[str] = field(default_factory=list)  # payments for orders not in the input
    wrong_token: list[str] = field(default_factory=list)  # payment carries another row's token
    report_mismatches: list[str] = field(default_factory=list)  # report ≠ server

    @property
    def ok(self) -> bool:
        return not (
            self.duplicates
            or self.missing
            or self.strays
            or self.wrong_token
            or self.report_mismatches
        )


def audit_server(
    expected: Mapping[str, str], payments: Mapping[str, list[dict[str, Any]]]
) -> Audit:
    """Server side only: each expected order has one payment with its token, nothing else."""
    found = Audit(rows=len(expected))
    for order, items in sorted(payments.items()):
        if order not in expected:
            found.strays.append(order)
        elif len(items) > 1:
            found.duplicates.append(order)
        elif items[0]["token"] != expected[order]:
            found.wrong_token.append(order)
    found.missing = sorted(o for o in expected if not payments.get(o))
    return found


def audit(
    expected: Mapping[str, str],
    payments: Mapping[str, list[dict[str, Any]]],
    report: Sequence[dict[str, str]],
) -> Audit:
    """Server and report: every valid row is reported done with the server's one payment ID."""
    found = audit_server(expected, payments)
    seen: set[str] = set()
    for line in report:
        order = line["order_id"]
        if order not in expected or order in seen:
            # A refused row: it must not claim a payment of its own.
            if line["status"] in DONE:
                found.report_mismatches.append(f"row {line['row']}: refused row reported done")
            continue
        seen.add(order)
        items = payments.get(order, [])
        server_id = items[0]["id"] if len(items) == 1 else None
        if line["status"] not in DONE or line["external_payment_id"] != server_id:
            found.report_mismatches.append(
                f"{order}: report {line['status']} {line['external_payment_id']!r}, "
                f"server {[p['id'] for p in items]}"
            )
    found.report_mismatches += [f"{o}: not in the report" for o in sorted(set(expected) - seen)]
    return found


def cli_env(sandbox_env: Mapping[str, str]) -> dict[str, str]:
    """The environment for a paybatch subprocess pointed at a sandbox."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CL_")}
    return {**env, **sandbox_env, "PYTHONUNBUFFERED": "1"}


def run_args(input_path: Path, state: Path, report: Path, *more: str) -> list[str]:
    """The `paybatch run` arguments shared by the end-to-end tests."""
    return ["run", str(input_path), "--state", str(state), "--report", str(report), *FAST, *more]


def start_cli(args: Sequence[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`python -m batch ARGS` in its own process, stdout and stderr to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "batch", *args],
            cwd=ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def post_count(server: SandboxServer) -> int:
    """POSTs the sandbox has seen so far, answered or dropped."""
    return sum(r.method == "POST" and r.path.startswith("/api/") for r in server.request_log())


def rows_in_state(state: Path, *states: str) -> int:
    """How many orders the state file has in `states` (0 before it exists)."""
    if not state.exists():
        return 0
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        marks = ",".join("?" * len(states))
        query = f"SELECT count(*) FROM payments WHERE state IN ({marks})"
        return int(db.execute(query, states).fetchone()[0])
    except sqlite3.OperationalError:  # the schema is not written yet
        return 0
    finally:
        db.close()


def orders_csv(tmp_path: Path, ids: Sequence[str]) -> Path:
    """`in/orders.csv` with one row per order id and a distinct token each."""
    (tmp_path / "in").mkdir(exist_ok=True)
    path = tmp_path / "in" / "orders.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["order_id", "payment_source_token"])
        writer.writerows([oid, f"tok_{i:04d}_abcdef"] for i, oid in enumerate(ids))
    return path


def out_args(tmp_path: Path, input_path: Path, *extra: str) -> list[str]:
    """`paybatch run` writing state, report and summary under `out/`, unpaced for a
    --no-limits sandbox (pass --log-format and the like in `extra`)."""
    out = tmp_path / "out"
    return [
        "run",
        str(input_path),
        "--state",
        str(out / "state.sqlite"),
        "--report",
        str(out / "report.csv"),
        "--summary-json",
        str(out / "summary.json"),
        "--rate-limit",
        "1000/1s",
        *extra,
    ]
