"""End to end: `paybatch run` against the sandbox, then the reports opened as finance opens them."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import openpyxl
import pytest
import xlsxwriter
from click.testing import CliRunner, Result
from e2e import out_args
from openpyxl.worksheet.worksheet import Worksheet

from batch.cli import main
from batch.rows import REPORT_COLUMNS
from batch.sandbox import SandboxServer

# What a spreadsheet would run as a formula, from the OWASP "CSV Injection" list.
INJECTIONS = [
    "=1+1",
    "=cmd|' /C calc'!A0",
    '=HYPERLINK("http://evil.example","x")',
    "+1+1",
    "-1+1",
    "@SUM(1)",
    "=SUM(A1:A2)",
]
HEADER = ["order_id", "payment_source_token", "reference", "notes"]


def _order_id(text: str, i: int) -> str:
    """The injection as an order id: without spaces and commas, which an id never holds."""
    return text.replace(" ", "").replace(",", "") + f"#{i}"


def _rows() -> list[list[str]]:
    """Valid rows whose order id, reference and free text each try a formula."""
    rows = [
        ["000123", "tok_plain_0000AAAA", "INV-1", "plain"],  # leading zeros must stay text
    ]
    for i, text in enumerate(INJECTIONS):
        rows.append([_order_id(text, i), f"tok_inject_{i:04d}ZZZZ", text, text])
    rows.append(["000123", "tok_dup_BBBB", "", "repeated order"])  # duplicate
    rows.append(["", "tok_blank_CCCC", "", "=blank order"])  # invalid
    return rows


def _write_csv(path: Path) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(_rows())
    return path


def _write_xlsx(path: Path) -> Path:
    book = xlsxwriter.Workbook(str(path), {"strings_to_formulas": False})
    sheet = book.add_worksheet("Orders")
    for r, line in enumerate([HEADER, *_rows()]):
        for c, value in enumerate(line):
            sheet.write_string(r, c, value)
    book.close()
    return path


def _run(
    sandbox: SandboxServer, tmp_path: Path, input_path: Path
) -> tuple[Result, dict[str, object]]:
    out = tmp_path / "out"
    args = out_args(tmp_path, input_path, "--log-format", "json")
    result = CliRunner().invoke(main, args, env=sandbox.env())
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    return result, summary


@pytest.fixture(params=["csv", "xlsx"])
def input_path(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    (tmp_path / "in").mkdir()
    if request.param == "csv":
        return _write_csv(tmp_path / "in" / "orders.csv")
    return _write_xlsx(tmp_path / "in" / "orders.xlsx")


def _csv_report(path: Path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def test_injection_corpus_is_neutralised_in_both_reports(
    sandbox: SandboxServer, tmp_path: Path, input_path: Path
) -> None:
    result, summary = _run(sandbox, tmp_path, input_path)
    assert result.exit_code == 1, result.stderr  # one duplicate and one invalid row
    lines = _csv_report(tmp_path / "out" / "report.csv")
    by_row = {int(line["row"]): line for line in lines}
    assert len(lines) == len(_rows())

    # The order ids reached the API unaltered; only the report cells are prefixed.
    sent = set(sandbox.payments_by_order())
    for i, text in enumerate(INJECTIONS):
        assert _order_id(text, i) in sent
        line = by_row[3 + i]
        assert line["status"] == "created"
        assert line["order_id"] == f"'{_order_id(text, i)}"
        assert line["notes"] == f"'{text}"
        assert sandbox.payments_by_order()[_order_id(text, i)][0]["attributes"]["reference"] == text
    for line in lines:
        for value in line.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value

    book = openpyxl.load_workbook(tmp_path / "out" / "report.xlsx")
    rows_sheet = book["Rows"]
    for sheet in book.worksheets:
        for cell in (c for line in sheet.iter_rows() for c in line):
            assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
    xlsx_lines = list(rows_sheet.iter_rows(min_row=2, values_only=True))
    header = [str(c.value) for c in rows_sheet[1]]
    for csv_line, xlsx_line in zip(lines, xlsx_lines, strict=True):
        for column, cell_value in zip(header, xlsx_line, strict=True):
            shown = "" if cell_value is None else str(cell_value)
            assert shown == csv_line[column], column  # the same text in both files
    with zipfile.ZipFile(tmp_path / "out" / "report.xlsx") as archive:
        for member in archive.namelist():
            if member.endswith(".xml"):
                assert b"<f>" not in archive.read(member)
                assert b"<f " not in archive.read(member)
    assert summary["exit_code"] == 1


def _summary_sheet(sheet: Worksheet) -> dict[str, object]:
    return {str(a): b for a, b, *_ in sheet.iter_rows(values_only=True) if a is not None}


def test_xlsx_cells_types_and_summary_match_the_run(sandbox: SandboxServer, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    input_path = _write_csv(tmp_path / "in" / "orders.csv")
    result, summary = _run(sandbox, tmp_path, input_path)
    assert result.exit_code == 1, result.stderr

    book = openpyxl.load_workbook(tmp_path / "out" / "report.xlsx")
    assert book.sheetnames[0] == "Summary"
    rows_sheet = book["Rows"]
    header = [c.value for c in rows_sheet[1]]
    assert header == [*REPORT_COLUMNS, "reference", "notes"]  # every input column, in order
    first = dict(zip(header, [c.value for c in rows_sheet[2]], strict=True))
    payment_id = sandbox.payments_by_order()["000123"][0]["id"]
    assert first == {
        "row": 2,
        "order_id": "000123",  # text, leading zeros kept
        "status": "created",
        "external_payment_id": payment_id,
        "http_status": 201,
        "error_code": None,
        "error_detail": None,
        "attempts": 1,
        "payment_source_token": "****AAAA",
        "reference": "INV-1",
        "notes": "plain",
    }
    assert isinstance(first["row"], int)
    assert isinstance(first["http_status"], int)
    statuses = [line[2] for line in rows_sheet.iter_rows(min_row=2, values_only=True)]
    assert statuses.count("duplicate") == 1
    assert statuses.count("invalid") == 1

    facts = _summary_sheet(book["Summary"])
    assert facts["Run ID"] == summary["run_id"]
    assert facts["Command"] == "paybatch run"
    assert facts["Environment"] == "test"
    assert facts["API host"] == summary["api_host"]
    assert facts["Organization"] == summary["api_host"]  # not a commercelayer.io host
    assert facts["Input file"] == str(input_path)
    assert facts["State file"] == str(tmp_path / "out" / "state.sqlite")
    assert facts["Input SHA-256"] == summary["input"]["sha256"]  # type: ignore[index]
    assert "(UTC" in str(facts["Started"])
    counts = summary["counts"]
    assert isinstance(counts, dict)
    assert counts == {"created": len(INJECTIONS) + 1, "duplicate": 1, "invalid": 1}
    labels = {
        "created": "Rows created",
        "already_created": "Rows already created (earlier runs)",
        "failed": "Rows failed",
        "invalid": "Rows invalid (not sent)",
        "duplicate": "Rows duplicate (not sent)",
    }
    for status, label in labels.items():
        assert facts[label] == counts.get(status, 0)
    assert facts["Total rows"] == len(_rows())
    assert facts["Rows that need someone"] == 2
    assert facts["DUPLICATE_ORDER"] == 1
    assert facts["BLANK_ORDER_ID"] == 1


def test_summary_json_counts_exit_code_run_id_paths_and_timings(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    (tmp_path / "in").mkdir()
    input_path = _write_csv(tmp_path / "in" / "orders.csv")
    result, summary = _run(sandbox, tmp_path, input_path)
    assert result.exit_code == summary["exit_code"] == 1
    report = summary["report"]
    assert report == {
        "csv": str(tmp_path / "out" / "report.csv"),
        "xlsx": str(tmp_path / "out" / "report.xlsx"),
        "errors": str(tmp_path / "out" / "report-errors.csv"),
    }
    assert summary["total_rows"] == len(_rows())
    assert summary["error_counts"] == {"DUPLICATE_ORDER": 1, "BLANK_ORDER_ID": 1}
    duration = summary["duration_s"]
    assert isinstance(duration, float | int)
    assert 0 <= duration < 60
    assert str(summary["started_at"]) <= str(summary["finished_at"])
    requests = summary["requests"]
    assert isinstance(requests, dict)
    log = sandbox.request_log()
    posts = [r for r in log if r.method == "POST" and r.path == "/api/external_payments"]
    assert requests["post"] == len(posts) == len(INJECTIONS) + 1
    lookups = [r for r in log if r.method == "GET" and r.path.startswith("/api/")]
    assert requests["lookup"] == len(lookups) == 2  # the preflight: one batch, two lookups
    assert requests["token_requests"] == 1


def test_no_xlsx_writes_csv_only(sandbox: SandboxServer, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    input_path = _write_csv(tmp_path / "in" / "orders.csv")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(input_path),
            "--state",
            str(out / "s.sqlite"),
            "--report",
            str(out / "r.csv"),
            "--no-xlsx",
            "--summary-json",
            str(out / "s.json"),
        ],
        env=sandbox.env(),
    )
    assert result.exit_code == 1, result.stderr
    assert (out / "r.csv").exists()
    assert not (out / "r.xlsx").exists()
    assert json.loads((out / "s.json").read_text())["report"]["xlsx"] is None
