"""`paybatch reconcile` against the sandbox: clean, then with each kind of mismatch."""

import csv
import dataclasses
from pathlib import Path

from click.testing import CliRunner

from batch.cli import main
from batch.sandbox import SandboxServer


def paid_run(tmp_path: Path, sandbox: SandboxServer, orders: list[str]) -> None:
    source = tmp_path / "orders.csv"
    source.write_text(
        "Order ID,Payment Source Token\n" + "".join(f"{o},tok_{o}_abcd\n" for o in orders)
    )
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(source),
            "--state",
            str(tmp_path / "state.sqlite"),
            "--report",
            str(tmp_path / "run.csv"),
            "--no-xlsx",
            "--rate-limit",
            "10000/1s",
        ],
        env=sandbox.env(),
    )
    assert result.exit_code == 0, result.output


def reconcile(tmp_path: Path, sandbox: SandboxServer) -> tuple[int, dict[str, dict[str, str]]]:
    out = tmp_path / "reconcile.csv"
    result = CliRunner().invoke(
        main,
        ["reconcile", "--state", str(tmp_path / "state.sqlite"), "--report", str(out)],
        env=sandbox.env(),
    )
    with out.open(encoding="utf-8-sig", newline="") as f:
        return result.exit_code, {row["order_id"]: row for row in csv.DictReader(f)}


def test_clean_state_reconciles(tmp_path: Path, sandbox: SandboxServer) -> None:
    orders = [f"ORD{i:03}" for i in range(30)]
    paid_run(tmp_path, sandbox, orders)
    code, rows = reconcile(tmp_path, sandbox)
    assert code == 0
    assert sorted(rows) == orders
    assert {row["result"] for row in rows.values()} == {"ok"}


def test_mismatches_are_listed_and_fail(tmp_path: Path, sandbox: SandboxServer) -> None:
    paid_run(tmp_path, sandbox, ["MISS", "TOKN", "XTRA", "MOVD", "FINE"])
    store = sandbox.store
    by_order = {p.order_id: p for p in store.payments()}
    # The server loses one, changes one token, and grows an extra payment on another order.
    with store._lock:
        del store._payments[by_order["MISS"].id]
        tokn = by_order["TOKN"]
        store._payments[tokn.id] = dataclasses.replace(tokn, token="tok_someone_else")
        movd = by_order["MOVD"]
        store._payments[movd.id] = dataclasses.replace(movd, order_id="FINE")
    order = store.order("XTRA")
    assert order is not None
    extra = store.add_payment(order, "tok_XTRA_abcd", {})
    code, rows = reconcile(tmp_path, sandbox)
    assert code == 1
    assert rows["MISS"]["result"] == "missing"
    assert rows["TOKN"]["result"] == "different_token"
    assert rows["XTRA"]["result"] == "extra_payments"
    assert extra.id in rows["XTRA"]["server_payment_ids"]
    assert rows["MOVD"]["result"] == "different_order"
    assert rows["FINE"]["result"] == "extra_payments"  # it now carries MOVD's payment too
