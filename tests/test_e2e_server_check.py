"""The server is the truth: the state file lost, emptied or doubled never pays twice, every
verdict row against the sandbox, and a stop after which no POST arrives.

Each test counts payments per order on the sandbox itself.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SandboxFactory
from e2e import (
    audit,
    cli_env,
    order_ids,
    post_count,
    read_report,
    run_args,
    start_cli,
    write_orders,
)

from batch.cli import main
from batch.sandbox import SandboxServer
from batch.sandbox.config import Faults


def _run(server: SandboxServer, source: Path, state: Path, report: Path) -> int:
    result = CliRunner().invoke(main, run_args(source, state, report), env=server.env())
    return result.exit_code


def _counts(server: SandboxServer) -> dict[str, int]:
    return {order: len(items) for order, items in server.payments_by_order().items()}


@pytest.mark.parametrize("loss", ["deleted", "empty", "other-file"])
def test_a_lost_or_empty_or_second_state_file_never_pays_twice(
    sandbox: SandboxServer, tmp_path: Path, loss: str
) -> None:
    source = write_orders(tmp_path / "orders.csv", order_ids(60))
    state = tmp_path / "state.sqlite"
    assert _run(sandbox, source.path, state, tmp_path / "first.csv") == 0
    if loss == "deleted":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{state}{suffix}").unlink(missing_ok=True)
    elif loss == "empty":
        for suffix in ("-wal", "-shm"):
            Path(f"{state}{suffix}").unlink(missing_ok=True)
        state.write_bytes(b"")
    else:
        state = tmp_path / "another.sqlite"
    posts = post_count(sandbox)
    assert _run(sandbox, source.path, state, tmp_path / "again.csv") == 0
    assert post_count(sandbox) == posts, "the rerun sent nothing"
    report = read_report(tmp_path / "again.csv")
    assert {line["status"] for line in report} == {"already_created"}
    found = audit(source.valid, sandbox.payments_by_order(), report)
    assert found.ok, found
    assert set(_counts(sandbox).values()) == {1}


def test_every_verdict_row_against_the_sandbox(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    server = sandbox_factory(limits=None, token_limit=None)  # the seeded orders only
    server.add_order("Fresh00001")
    server.add_order("Mine000001", payment_source="external:tok_mine_0001")
    rows = {
        "Fresh00001": ("tok_fresh_0001", "created", ""),
        "Mine000001": ("tok_mine_0001", "already_created", ""),
        "CardChk001": ("tok_card_0001", "failed", "ORDER_HAS_PAYMENT_SOURCE"),
        "CardExt001": ("tok_card_0002", "failed", "ORDER_HAS_PAYMENT_SOURCE"),
        "ExtOther01": ("tok_other_0003", "failed", "ORDER_HAS_PAYMENT_SOURCE"),
        "ExtTwice01": ("ext_seeded_second_0001", "failed", "EXTRA_PAYMENTS"),
        "StripeNo01": ("tok_stripe_0005", "failed", "NO_EXTERNAL_PAYMENT_METHOD"),
        "NoMethod01": ("tok_none_0006", "failed", "NO_EXTERNAL_PAYMENT_METHOD"),
        "Cancel0001": ("tok_cancel_0007", "failed", "ORDER_NOT_PENDING"),
        "Unknown001": ("tok_unknown_0008", "failed", "RECORD_NOT_FOUND"),
    }
    source = tmp_path / "orders.csv"
    source.write_text(
        "order_id,payment_source_token\n" + "".join(f"{o},{t}\n" for o, (t, _, _) in rows.items())
    )
    before = _counts(server)
    result = CliRunner().invoke(
        main,
        [*run_args(source, tmp_path / "s.sqlite", tmp_path / "r.csv"), "--fail-fast-after", "0"],
        env=server.env(),
    )
    assert result.exit_code == 1, result.output
    lines = {line["order_id"]: line for line in read_report(tmp_path / "r.csv")}
    assert {o: (lines[o]["status"], lines[o]["error_code"]) for o in rows} == {
        o: (status, code) for o, (_, status, code) in rows.items()
    }
    after = _counts(server)
    assert after.pop("Fresh00001") == 1
    assert before == after, "no order but the fresh one got a payment"
    assert post_count(server) == 1


def test_a_replaced_source_is_flagged_and_never_resent(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    sandbox.add_order("ORD00001", payment_source="external:tok_ord00001_0001|card")
    source = write_orders(tmp_path / "orders.csv", ["ORD00001"])
    assert _run(sandbox, source.path, tmp_path / "s.sqlite", tmp_path / "r.csv") == 1
    line = read_report(tmp_path / "r.csv")[0]
    assert (line["status"], line["error_code"]) == ("failed", "SOURCE_REPLACED")
    assert line["external_payment_id"] == sandbox.payments_of("ORD00001")[0].id
    assert post_count(sandbox) == 0


def test_sigint_mid_run_no_post_arrives_later_than_half_a_second(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    server = sandbox_factory(
        open_orders=True,
        limits=None,
        token_limit=None,
        faults=Faults(latency_ms=(40.0, 160.0)),
    )
    source = write_orders(tmp_path / "orders.csv", order_ids(300))
    state = tmp_path / "state.sqlite"
    args = run_args(source.path, state, tmp_path / "r.csv")
    limit = args.index("100000/1s")
    args[limit] = "30/1s"  # about 10 s of sending: the signal lands mid-run
    proc = start_cli(args, cli_env(server.env()), tmp_path / "run.log")
    try:
        deadline = time.monotonic() + 30
        while post_count(server) < 100:
            assert proc.poll() is None, (tmp_path / "run.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130, (tmp_path / "run.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    posts = [
        r.at for r in server.request_log() if r.method == "POST" and r.path.startswith("/api/")
    ]
    late = [round(at - signalled, 3) for at in posts if at > signalled + 0.5]
    last = max(posts) - signalled
    print(f"[sigint] posts={len(posts)} of 300, last POST {last:+.3f} s after the signal")
    assert late == [], f"POSTs arrived after the signal: {late}"
    assert len(posts) < 300
    report = read_report(tmp_path / "r.csv")
    assert "not_attempted" in {line["status"] for line in report}
    # The rerun finishes the rest, exactly once.
    rerun = CliRunner().invoke(
        main, run_args(source.path, state, tmp_path / "r2.csv"), env=server.env()
    )
    assert rerun.exit_code == 0, rerun.output
    found = audit(source.valid, server.payments_by_order(), read_report(tmp_path / "r2.csv"))
    assert found.ok, found


def test_orders_by_number_are_resolved_on_the_server_before_any_send(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    server = sandbox_factory(limits=None, token_limit=None)
    server.add_order("NumOrderA1", number="5001")
    server.add_order("NumOrderB1", number="5002")
    server.add_order("NumOrderC1", number="5003", payment_source="card")
    server.add_order("NumOrderD1", number="5004")
    server.add_order("NumOrderD2", number="5004")  # one number, two orders
    source = tmp_path / "orders.csv"
    source.write_text(
        "Order Number,Payment Source Token\n"
        "5001,tok_num_5001\n5002,tok_num_5002\n5003,tok_num_5003\n"
        "5004,tok_num_5004\n5999,tok_num_5999\n"
    )
    state = tmp_path / "s.sqlite"

    def run(report: str) -> tuple[int, dict[str, dict[str, str]]]:
        args = [*run_args(source, state, tmp_path / report), "--match", "number"]
        result = CliRunner().invoke(main, args, env=server.env())
        lines = read_report(tmp_path / report)
        return result.exit_code, {line["order_number"]: line for line in lines}

    code, lines = run("r1.csv")
    assert code == 1
    assert {n: (line["status"], line["error_code"]) for n, line in lines.items()} == {
        "5001": ("created", ""),
        "5002": ("created", ""),
        "5003": ("failed", "ORDER_HAS_PAYMENT_SOURCE"),
        "5004": ("failed", "AMBIGUOUS_ORDER_NUMBER"),
        "5999": ("failed", "RECORD_NOT_FOUND"),
    }
    assert lines["5001"]["order_id"] == "NumOrderA1"  # the report shows both
    assert _counts(server) == {"NumOrderA1": 1, "NumOrderB1": 1}
    # The state file lost: the numbers are looked up again and nothing is paid twice.
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)
    code, lines = run("r2.csv")
    assert lines["5001"]["status"] == lines["5002"]["status"] == "already_created"
    assert _counts(server) == {"NumOrderA1": 1, "NumOrderB1": 1}
    assert post_count(server) == 2


def test_a_server_that_refuses_number_lookups_stops_with_a_clear_message(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    server = sandbox_factory(limits=None, token_limit=None, number_filter=False)
    server.add_order("NumOrderA1", number="5001")
    source = tmp_path / "orders.csv"
    source.write_text("Order Number,Payment Source Token\n5001,tok_num_5001\n")
    args = [*run_args(source, tmp_path / "s.sqlite", tmp_path / "r.csv"), "--match", "number"]
    result = CliRunner().invoke(main, args, env=server.env())
    assert result.exit_code == 2, result.output
    assert "look orders up by number" in result.stderr
    assert "--match id" in result.stderr
    assert post_count(server) == 0


def test_a_full_state_disk_stops_the_run_in_one_line_and_sends_nothing_unrecorded(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from batch import statedb

    connect = statedb.connect

    def small_disk(path: Path) -> sqlite3.Connection:
        db = connect(path)
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages + 2}")  # "database or disk is full"
        return db

    monkeypatch.setattr(statedb, "connect", small_disk)
    source = write_orders(tmp_path / "orders.csv", order_ids(400))
    args = run_args(source.path, tmp_path / "s.sqlite", tmp_path / "r.csv")
    result = CliRunner().invoke(main, args, env=sandbox.env())
    assert result.exit_code == 2, result.output
    assert "cannot write the state file" in result.stderr
    assert "Traceback" not in result.output
    assert result.stderr.count("database or disk is full") <= 2
    assert post_count(sandbox) < 400  # stopped early, and nothing was sent unrecorded
