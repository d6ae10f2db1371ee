"""`paybatch reconcile` against the sandbox: from the state file, and from an input alone."""

import csv
from pathlib import Path

from click.testing import CliRunner

from batch.cli import main
from batch.sandbox import SandboxServer


def write_input(tmp_path: Path, rows: dict[str, str]) -> Path:
    source = tmp_path / "orders.csv"
    source.write_text(
        "Order ID,Payment Source Token\n" + "".join(f"{o},{t}\n" for o, t in rows.items())
    )
    return source


def paid_run(tmp_path: Path, sandbox: SandboxServer, orders: list[str]) -> Path:
    source = write_input(tmp_path, {o: f"tok_{o}_abcd" for o in orders})
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
    return source


def reconcile(
    tmp_path: Path, sandbox: SandboxServer, *args: str
) -> tuple[int, dict[str, dict[str, str]]]:
    out = tmp_path / "reconcile.csv"
    result = CliRunner().invoke(
        main,
        ["reconcile", *args, "--state", str(tmp_path / "state.sqlite"), "--report", str(out)],
        env=sandbox.env(),
    )
    assert result.exit_code in (0, 1), result.output
    with out.open(encoding="utf-8-sig", newline="") as f:
        return result.exit_code, {row["order_id"]: row for row in csv.DictReader(f)}


def test_clean_state_reconciles(tmp_path: Path, sandbox: SandboxServer) -> None:
    orders = [f"ORD{i:03}" for i in range(30)]
    paid_run(tmp_path, sandbox, orders)
    code, rows = reconcile(tmp_path, sandbox)
    assert code == 0
    assert sorted(rows) == orders
    assert {row["result"] for row in rows.values()} == {"paid"}


def test_what_is_in_effect_is_checked_not_only_that_a_payment_exists(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    paid_run(tmp_path, sandbox, ["CARD", "XTRA", "FINE"])
    # Since the run: a card becomes one order's active source (our payment is left
    # orphaned), and a second payment lands on another order.
    sandbox.add_order("CARD", payment_source="card")
    sandbox.add_order("XTRA", payment_source="external:tok_XTRA_abcd")
    code, rows = reconcile(tmp_path, sandbox)
    assert code == 1
    assert rows["FINE"]["result"] == "paid"
    assert rows["CARD"]["result"] == "source_replaced"
    assert rows["CARD"]["active_source"].startswith("stripe_payments ")
    assert rows["XTRA"]["result"] == "more_than_one_payment"
    assert len(rows["XTRA"]["server_payment_ids"].split()) == 2


def test_reconcile_input_needs_no_state_file(tmp_path: Path, sandbox: SandboxServer) -> None:
    source = paid_run(tmp_path, sandbox, ["PAID", "ALSO"])
    (tmp_path / "state.sqlite").unlink()
    sandbox.add_order("NONE")
    sandbox.add_order("TWO", payment_source="external:tok_TWO_abcd|external:tok_TWO_abcd")
    sandbox.add_order("ELSE", payment_source="external:tok_not_the_row")
    with source.open("a") as f:
        f.write("NONE,tok_NONE_abcd\nTWO,tok_TWO_abcd\nELSE,tok_ELSE_abcd\n")
    code, rows = reconcile(tmp_path, sandbox, str(source))
    assert code == 1
    assert {o: r["result"] for o, r in rows.items()} == {
        "PAID": "paid",
        "ALSO": "paid",
        "NONE": "not_paid",
        "TWO": "more_than_one_payment",
        "ELSE": "paid_with_another_token",
    }
    assert rows["PAID"]["row"] == "2"
    assert not (tmp_path / "state.sqlite").exists()
