"""End to end: what the report carries, the error file's to-do list, and the fix-and-rerun flow."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import openpyxl
from click.testing import CliRunner, Result
from conftest import SandboxFactory
from e2e import read_report

from batch.cli import main
from batch.report import what_to_do
from batch.rows import REPORT_COLUMNS, RowStatus
from batch.sandbox import SandboxServer

ERROR_COLUMNS = ["row", "order_id", "status", "error_code", "error_detail", "what_to_do"]
FAST = ("--rate-limit", "1000/1s", "--log-format", "json")


def _run(server: SandboxServer, tmp_path: Path, input_path: Path, *more: str) -> Result:
    out = tmp_path / "out"
    args = ["run", str(input_path), "--state", str(out / "state.sqlite"), *FAST, *more]
    return CliRunner().invoke(main, args, env=server.env())


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_xlsx_input_numbers_and_dates_stay_typed_and_key_fields_stay_text(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    source = tmp_path / "orders.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    header = ["Amount", "Order ID", "Payment Source Token", "Reference", "Paid on", "Qty"]
    sheet.append(header)
    sheet.append([12.5, "ORD1", "tok_one_1111", 12345, dt.date(2025, 3, 1), 3])
    sheet.append([-7.25, "ORD2", "tok_two_2222", "INV-2", dt.datetime(2025, 3, 2, 9, 30), 1])
    book.save(source)

    result = _run(sandbox, tmp_path, source, "--report", str(tmp_path / "out" / "r.xlsx"))
    assert result.exit_code == 0, result.output

    rows = openpyxl.load_workbook(tmp_path / "out" / "r.xlsx")["Rows"]
    names = [c.value for c in rows[1]]
    # Every input column but the two in our own columns, in file order, after ours.
    assert names == [*REPORT_COLUMNS, "Amount", "reference", "Paid on", "Qty"]
    first = dict(zip(names, rows[2], strict=True))
    second = dict(zip(names, rows[3], strict=True))
    assert (first["Amount"].value, first["Amount"].data_type) == (12.5, "n")
    assert (second["Amount"].value, second["Amount"].data_type) == (-7.25, "n")  # no "'" prefix
    assert (first["Qty"].value, first["Qty"].data_type) == (3, "n")
    assert (first["Paid on"].is_date, first["Paid on"].value) == (True, dt.datetime(2025, 3, 1))
    paid_on = (second["Paid on"].is_date, second["Paid on"].value)
    assert paid_on == (True, dt.datetime(2025, 3, 2, 9, 30))
    # The invoice number finance matches on is text, even when the sheet had it as a number.
    assert (first["reference"].value, first["reference"].data_type) == ("12345", "s")
    assert (first["order_id"].value, first["order_id"].data_type) == ("ORD1", "s")
    # The CSV beside it has the same cells as text.
    lines = read_report(tmp_path / "out" / "r.csv")
    assert [line["Amount"] for line in lines] == ["12.5", "-7.25"]
    assert [line["Paid on"] for line in lines] == ["2025-03-01", "2025-03-02T09:30:00"]
    assert [line["reference"] for line in lines] == ["12345", "INV-2"]
    assert sandbox.payments_by_order()["ORD1"][0]["attributes"]["reference"] == "12345"


def test_csv_report_carries_mapped_columns_under_their_field_names(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    header = ["Invoice", "Order Ref", "Token", "reference_origin", "metadata", "order_number"]
    meta = '{"batch": 7}'
    source = _write_csv(
        tmp_path / "orders.csv", header, [["INV-9", "ORD9", "tok_nine_9999", "erp", meta, "1009"]]
    )
    mapping = [
        "--column",
        "order_id=Order Ref",
        "--column",
        "payment_source_token=Token",
        "--column",
        "reference=Invoice",
    ]
    report = tmp_path / "out" / "r.csv"
    result = _run(sandbox, tmp_path, source, "--report", str(report), "--no-xlsx", *mapping)
    assert result.exit_code == 0, result.output
    [line] = read_report(report)
    carried = list(line)[len(REPORT_COLUMNS) :]
    assert carried == ["reference", "reference_origin", "metadata", "order_number"]
    assert [line[c] for c in carried] == ["INV-9", "erp", meta, "1009"]


def _error_file(path: Path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames is not None
        assert list(reader.fieldnames)[:7] == [*ERROR_COLUMNS, "payment_source_token"]
        return list(reader)


def test_error_file_lists_exactly_the_rows_that_need_someone_and_a_fixed_rerun_clears_it(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    orders = {f"ORD{n}": "pending" for n in range(1, 6)}
    server = sandbox_factory(orders=orders, open_orders=False, limits=None, token_limit=None)
    header = ["order_id", "payment_source_token", "notes"]
    rows = [
        ["ORD1", "tok_one_1111", "fine"],
        ["NOPE1", "tok_two_2222", "typo in the id"],  # 404: no such order
        ["ORD3", "", "token missing"],  # invalid
        ["ORD1", "tok_dup_3333", "=pasted twice"],  # duplicate
        ["ORD4", "tok_four_4444", "fine"],
    ]
    source = _write_csv(tmp_path / "orders.csv", header, rows)
    first = _run(server, tmp_path, source, "--report", str(tmp_path / "out" / "first.csv"))
    assert first.exit_code == 1, first.output

    errors = _error_file(tmp_path / "out" / "first-errors.csv")
    by_row = {line["row"]: line for line in errors}
    assert sorted(by_row) == ["3", "4", "5"]  # rows 2 and 6 were paid: nothing to do
    assert [by_row[r]["status"] for r in ("3", "4", "5")] == ["failed", "invalid", "duplicate"]
    assert [by_row[r]["error_code"] for r in ("3", "4", "5")] == [
        "RECORD_NOT_FOUND",
        "BLANK_TOKEN",
        "DUPLICATE_ORDER",
    ]
    for line in errors:
        assert line["what_to_do"] == what_to_do(RowStatus(line["status"]), line["error_code"])
    assert by_row["3"]["payment_source_token"] == "****2222"  # masked as in the report
    assert by_row["5"]["notes"] == "'=pasted twice"  # formula-safe like the report
    assert "tok_two_2222" not in (tmp_path / "out" / "first-errors.csv").read_text("utf-8-sig")
    sheet = openpyxl.load_workbook(tmp_path / "out" / "first.xlsx")["Errors"]
    assert [line[0] for line in sheet.iter_rows(min_row=2, values_only=True)] == [3, 4, 5]

    # The README's flow: fix those rows in the original file and run it again.
    rows[1][0] = "ORD2"
    rows[2][1] = "tok_three_3333"
    del rows[3]
    _write_csv(source, header, rows)
    second = _run(server, tmp_path, source, "--report", str(tmp_path / "out" / "second.csv"))
    assert second.exit_code == 0, second.output
    assert _error_file(tmp_path / "out" / "second-errors.csv") == []
    statuses = [line["status"] for line in read_report(tmp_path / "out" / "second.csv")]
    assert statuses == ["already_created", "created", "created", "already_created"]
    assert {order: len(p) for order, p in server.payments_by_order().items()} == {
        "ORD1": 1,
        "ORD2": 1,
        "ORD3": 1,
        "ORD4": 1,
    }


def test_a_paid_row_with_a_flag_is_in_the_error_file(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    header = ["order_id", "payment_source_token"]
    source = _write_csv(tmp_path / "orders.csv", header, [["ORD1", "tok_first_1111"]])
    assert (
        _run(sandbox, tmp_path, source, "--report", str(tmp_path / "out" / "a.csv")).exit_code == 0
    )
    _write_csv(source, header, [["ORD1", "tok_other_2222"]])  # the token changed since
    again = _run(sandbox, tmp_path, source, "--report", str(tmp_path / "out" / "b.csv"))
    [line] = _error_file(tmp_path / "out" / "b-errors.csv")
    assert (line["status"], line["error_code"]) == ("already_created", "TOKEN_CHANGED")
    assert "nothing was resent" in line["what_to_do"]
    assert again.exit_code == 1  # paid, but a person must look at it


def test_validate_and_dry_run_write_a_summary_json_and_dash_means_stdin_and_stdout(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    data = "order_id,payment_source_token\nORD1,tok_one_1111\n,tok_blank_2222\n"
    report = tmp_path / "v.csv"
    for args in (["validate"], ["run", "--dry-run"]):
        result = CliRunner().invoke(
            main,
            [*args, "-", "--report", str(report), "--summary-json", "-"],
            input=data,
            env=sandbox.env(),  # the dry run asks the server (the preflight)
        )
        assert result.exit_code == 1, result.output
        doc = json.loads(result.stdout)  # stdout holds the JSON and nothing else
        assert doc["counts"] == {"valid": 1, "invalid": 1}
        assert doc["report"]["errors"] == str(tmp_path / "v-errors.csv")
        assert "2 rows: 1 invalid, 1 valid" in result.stderr
    xlsx = tmp_path / "in.xlsx"
    openpyxl.Workbook().save(xlsx)
    refused = CliRunner().invoke(main, ["validate", "-"], input=xlsx.read_bytes())
    assert refused.exit_code == 2
    assert "only CSV can be read from `-`" in refused.stderr


def test_a_directory_as_input_names_itself(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["validate", str(tmp_path)])
    assert result.exit_code == 2
    assert f"'{tmp_path}' is a directory" in result.stderr


def test_reconcile_writes_a_summary_json_to_stdout(sandbox: SandboxServer, tmp_path: Path) -> None:
    header = ["order_id", "payment_source_token"]
    source = _write_csv(tmp_path / "orders.csv", header, [["R1", "tok_r1_1111"], ["R2", "tok_2"]])
    assert _run(sandbox, tmp_path, source, "--no-xlsx").exit_code == 0
    state = tmp_path / "out" / "state.sqlite"
    report = tmp_path / "out" / "reconcile.csv"
    args = ["reconcile", "--state", str(state), "--report", str(report), "--summary-json", "-"]
    result = CliRunner().invoke(main, args, env=sandbox.env())
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["command"], doc["checked"], doc["mismatched"]) == ("reconcile", 2, 0)
    assert doc["report"] == {"csv": str(report)}
    assert "2 orders checked, 0 not paid as expected" in result.stderr
