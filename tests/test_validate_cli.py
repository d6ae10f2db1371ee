"""`paybatch validate` (offline, or --server) and `run --dry-run`: exit codes, statuses, and
nothing sent: the offline check makes no request, the server check only reads."""

from __future__ import annotations

import csv
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner, Result

from batch.cli import main
from batch.sandbox import SandboxServer

COMMANDS = [["validate"], ["run", "--dry-run"], ["validate", "--server"]]


def assert_nothing_sent(command: list[str], sandbox: SandboxServer) -> None:
    log = sandbox.request_log()
    if command == ["validate"]:
        assert log == []  # offline: no token request, no lookup
    else:  # the preflight: a token and GETs, never a write
        assert {(r.method, r.path) for r in log} <= {
            ("POST", "/oauth/token"),
            ("GET", "/api/orders"),
            ("GET", "/api/external_payments"),
        }
    assert sandbox.payments_by_order() == {}


def _input(tmp_path: Path, rows: list[list[str]], header: list[str] | None = None) -> Path:
    (tmp_path / "in").mkdir(exist_ok=True)
    path = tmp_path / "in" / "orders.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header or ["order_id", "payment_source_token", "metadata"])
        writer.writerows(rows)
    return path


def _invoke(
    command: list[str], input_path: Path, tmp_path: Path, sandbox: SandboxServer, *extra: str
) -> Result:
    args = [*command, str(input_path), "--report", str(tmp_path / "out" / "check.csv"), *extra]
    if command != ["validate"]:
        args += ["--state", str(tmp_path / "out" / "state.sqlite")]
    return CliRunner().invoke(main, args, env=sandbox.env())


def _report(tmp_path: Path) -> list[dict[str, str]]:
    with (tmp_path / "out" / "check.csv").open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("command", COMMANDS)
def test_all_valid_exits_0_and_sends_nothing(
    command: list[str], sandbox: SandboxServer, tmp_path: Path
) -> None:
    rows = [["A1", "tok_aaaa1111", ""], ["A2", "tok_bbbb2222", '{"k": 1}']]
    result = _invoke(command, _input(tmp_path, rows), tmp_path, sandbox)
    assert result.exit_code == 0, result.stderr
    assert [line["status"] for line in _report(tmp_path)] == ["valid", "valid"]
    assert "2 rows: 2 valid" in result.stderr
    assert_nothing_sent(command, sandbox)
    assert not (tmp_path / "out" / "state.sqlite").exists()  # a dry run keeps no state


@pytest.mark.parametrize("command", COMMANDS)
def test_bad_rows_exit_1_with_invalid_and_duplicate(
    command: list[str], sandbox: SandboxServer, tmp_path: Path
) -> None:
    rows = [
        ["A1", "tok_aaaa1111", ""],
        ["A2", "4111111111111111", ""],  # a card number is not a token
        ["A1", "tok_cccc3333", ""],  # repeated order
        ["", "tok_dddd4444", ""],  # blank order id
        ["A5", "tok_eeee5555", "{not json"],
    ]
    result = _invoke(command, _input(tmp_path, rows), tmp_path, sandbox)
    assert result.exit_code == 1, result.stderr
    lines = _report(tmp_path)
    assert [line["status"] for line in lines] == [
        "valid",
        "invalid",
        "duplicate",
        "invalid",
        "invalid",
    ]
    assert [line["row"] for line in lines] == ["2", "3", "4", "5", "6"]
    for line in lines[1:]:
        assert line["error_code"]
        assert line["error_detail"]
    assert "4111111111111111" not in (tmp_path / "out" / "check.csv").read_text("utf-8-sig")
    assert_nothing_sent(command, sandbox)

    book = openpyxl.load_workbook(tmp_path / "out" / "check.xlsx")
    facts = {a: b for a, b, *_ in book["Summary"].iter_rows(values_only=True) if a}
    assert facts["Command"] == "paybatch validate (nothing sent)"
    assert facts["Environment"] == ("offline" if command == ["validate"] else "test")
    counts = ("Rows valid", "Rows invalid (not sent)", "Rows duplicate (not sent)")
    assert tuple(facts[label] for label in counts) == (1, 3, 1)
    assert facts["Total rows"] == 5


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "missing.csv"),  # no such file
        ("order_id,reference\nA1,INV-1\n", "payment_source_token"),  # a required column is gone
        ("", "empty"),
    ],
)
def test_unusable_file_exits_2(
    command: list[str],
    content: str | None,
    needle: str,
    sandbox: SandboxServer,
    tmp_path: Path,
) -> None:
    path = tmp_path / "missing.csv"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    result = _invoke(command, path, tmp_path, sandbox, "--log-format", "text")
    assert result.exit_code == 2
    assert needle in result.stderr.lower()
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "check.csv").exists()
    assert_nothing_sent(command, sandbox)


def test_column_mapping_applies_to_validate(sandbox: SandboxServer, tmp_path: Path) -> None:
    path = _input(tmp_path, [["A1", "tok_aaaa1111"]], header=["Order Ref", "Token"])
    result = _invoke(
        ["validate"],
        path,
        tmp_path,
        sandbox,
        "--column",
        "order_id=Order Ref",
        "--column",
        "payment_source_token=Token",
    )
    assert result.exit_code == 0, result.stderr
    assert _report(tmp_path)[0]["order_id"] == "A1"
