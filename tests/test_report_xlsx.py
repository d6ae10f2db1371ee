"""The XLSX report: opened with openpyxl, as finance would open it with Excel."""

from __future__ import annotations

import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openpyxl
import pytest
from openpyxl.worksheet.worksheet import Worksheet

from batch import __version__
from batch.report import ReportWriter, RunInfo
from batch.rows import REPORT_COLUMNS, ReportRow, RowStatus

RAW_TOKEN = "tok_test_VERYSECRET1234"
STARTED = datetime(2025, 3, 1, 2, 0, 0, tzinfo=UTC)
INJECTIONS = [
    "=cmd|' /C calc'!A0",
    "+1",
    "-1",
    "@SUM(1)",
    "\t=1",
    "\r=1",
    '=HYPERLINK("http://evil.example","x")',
]


def info(tmp_path: Path, kind: str = "run") -> RunInfo:
    return RunInfo(
        run_id="run-xyz",
        started_at=STARTED,
        finished_at=STARTED + timedelta(seconds=61),
        input_path=tmp_path / "in" / "orders.xlsx",
        input_sha256="cd" * 32,
        environment="live",
        api_host="acme.commercelayer.io",
        kind=kind,  # type: ignore[arg-type]
    )


def row(n: int, status: RowStatus = RowStatus.CREATED, **changes: object) -> ReportRow:
    base: dict[str, object] = {
        "row": n,
        "order_id": f"{n:06d}",  # digits-only ids must stay text
        "status": status,
        "payment_source_token": RAW_TOKEN,
        "external_payment_id": "12345",
        "http_status": 201,
        "attempts": 1,
    }
    base.update(changes)
    return ReportRow(**base)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _utc_plus_one(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's local zone is UTC+01:00 (no DST), so local times are predictable."""
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset() is POSIX-only")
    monkeypatch.setenv("TZ", "Etc/GMT-1")  # POSIX sign: GMT-1 is one hour east of UTC
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def all_cells(ws: Worksheet) -> list[object]:
    return [cell for line in ws.iter_rows() for cell in line]


def summary_map(ws: Worksheet) -> dict[str, object]:
    return {
        line[0]: line[1] for line in ws.iter_rows(values_only=True) if line and line[0] is not None
    }


@pytest.fixture
def mixed_report(tmp_path: Path) -> Path:
    target = tmp_path / "report.csv"
    with ReportWriter(target, extra_headers=["customer"]) as w:
        w.write(row(2, extra={"customer": "0042"}))
        w.write(row(3, RowStatus.ALREADY_CREATED))
        w.write(
            row(
                4,
                RowStatus.FAILED,
                http_status=422,
                error_code="VALIDATION_ERROR",
                error_detail="order is placed",
                external_payment_id="",
            )
        )
        w.write(
            row(
                5,
                RowStatus.INVALID,
                http_status=None,
                attempts=0,
                external_payment_id="",
                error_code="MISSING_TOKEN",
            )
        )
        w.write(
            row(
                6,
                RowStatus.DUPLICATE,
                http_status=None,
                attempts=0,
                external_payment_id="",
                error_code="DUPLICATE_ORDER",
            )
        )
        w.write(row(7, RowStatus.NOT_ATTEMPTED, http_status=None, attempts=0))
        w.commit(info(tmp_path))
    return target.with_suffix(".xlsx")


def test_rows_sheet_cells_and_types(mixed_report: Path) -> None:
    book = openpyxl.load_workbook(mixed_report)
    assert book.sheetnames == ["Summary", "Errors", "Rows"]
    ws = book["Rows"]
    values = list(ws.iter_rows(values_only=True))
    assert list(values[0]) == [*REPORT_COLUMNS, "customer"]
    assert len(values) == 7
    first = ws[2]
    by_name = dict(zip(values[0], first, strict=True))
    assert by_name["row"].value == 2
    assert by_name["row"].data_type == "n"
    assert by_name["http_status"].value == 201
    assert by_name["http_status"].data_type == "n"
    assert by_name["attempts"].value == 1
    assert by_name["attempts"].data_type == "n"
    # ids that look like numbers are strings, leading zeros intact
    assert by_name["order_id"].value == "000002"
    assert by_name["order_id"].data_type == "s"
    assert by_name["external_payment_id"].value == "12345"
    assert by_name["external_payment_id"].data_type == "s"
    assert by_name["customer"].value == "0042"
    assert by_name["payment_source_token"].value == "****1234"
    # An empty http_status is an empty cell, not 0
    assert ws.cell(row=6, column=REPORT_COLUMNS.index("http_status") + 1).value is None
    assert all(cell.data_type != "f" for cell in all_cells(ws))


def test_frozen_header_autofilter_widths_and_colours(mixed_report: Path) -> None:
    ws = openpyxl.load_workbook(mixed_report)["Rows"]
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == "A1:J7"
    detail_width = ws.column_dimensions["G"].width
    assert detail_width is not None
    assert detail_width >= len("order is placed")
    status_col = REPORT_COLUMNS.index("status") + 1
    fills = {
        ws.cell(row=r, column=status_col).value: ws.cell(row=r, column=status_col).fill.fgColor.rgb
        for r in range(2, 8)
    }
    assert fills["created"] == fills["already_created"]
    assert fills["invalid"] == fills["duplicate"]
    assert len({fills["created"], fills["failed"], fills["invalid"], fills["not_attempted"]}) == 4
    assert "C6EFCE" in str(fills["created"])
    assert "FFC7CE" in str(fills["failed"])


def test_summary_sheet(mixed_report: Path, tmp_path: Path) -> None:
    book = openpyxl.load_workbook(mixed_report)
    summary = summary_map(book["Summary"])
    assert summary["Run ID"] == "run-xyz"
    # Local time with its offset: 02:00 UTC is 03:00 at UTC+01:00 (TZ set by the fixture).
    assert summary["Started"] == "2025-03-01 03:00:00 (UTC+01:00)"
    assert summary["Finished"] == "2025-03-01 03:01:01 (UTC+01:00)"
    assert summary["Duration (seconds)"] == 61
    assert summary["Input file"] == str(tmp_path / "in" / "orders.xlsx")
    assert summary["Input SHA-256"] == "cd" * 32
    assert summary["Environment"] == "live"
    assert summary["Organization"] == "acme"
    assert summary["API host"] == "acme.commercelayer.io"
    assert summary["paybatch version"] == __version__
    for label in (
        "Rows created",
        "Rows already created (earlier runs)",
        "Rows failed",
        "Rows invalid (not sent)",
        "Rows duplicate (not sent)",
        "Rows not attempted",
    ):
        assert summary[label] == 1
    assert summary["Total rows"] == 6
    assert summary["Rows that need someone"] == 4
    assert "Rows valid" not in summary  # a run report lists run statuses
    assert summary["VALIDATION_ERROR"] == 1
    assert summary["MISSING_TOKEN"] == 1
    assert summary["DUPLICATE_ORDER"] == 1
    assert all(cell.data_type != "f" for cell in all_cells(book["Summary"]))


def test_validate_report_lists_validate_statuses(tmp_path: Path) -> None:
    target = tmp_path / "v.csv"
    with ReportWriter(target, extra_headers=[]) as w:
        w.write(row(2, RowStatus.VALID, http_status=None, attempts=0, external_payment_id=""))
        w.write(row(3, RowStatus.VALID, http_status=None, attempts=0, external_payment_id=""))
        w.commit(info(tmp_path, kind="validate"))
    summary = summary_map(openpyxl.load_workbook(target.with_suffix(".xlsx"))["Summary"])
    assert summary["Rows valid"] == 2
    assert summary["Rows invalid (not sent)"] == 0
    assert "Rows created" not in summary


def test_formula_corpus_is_never_a_formula(tmp_path: Path) -> None:
    target = tmp_path / "r.csv"
    with ReportWriter(target, extra_headers=["memo"]) as w:
        for i, text in enumerate(INJECTIONS, start=2):
            w.write(
                row(
                    i,
                    RowStatus.FAILED,
                    order_id=text,
                    error_code=text,
                    error_detail=text,
                    external_payment_id=text,
                    extra={"memo": text},
                )
            )
        w.commit(info(tmp_path))
    ws = openpyxl.load_workbook(target.with_suffix(".xlsx"))["Rows"]
    cells = all_cells(ws)
    assert all(cell.data_type != "f" for cell in cells)
    names = [c.value for c in ws[1]]
    for r, text in enumerate(INJECTIONS, start=2):
        for name in ("order_id", "external_payment_id", "error_code", "error_detail", "memo"):
            value = ws.cell(row=r, column=names.index(name) + 1).value
            # identical to the CSV: the same leading quote (\r is stored as an XML escape)
            assert isinstance(value, str)
            assert value.startswith("'")
            assert value.replace("_x000D_", "\r") == "'" + text


def test_raw_token_absent_from_xlsx_xml(mixed_report: Path) -> None:
    with zipfile.ZipFile(mixed_report) as z:
        blobs = b"".join(z.read(name) for name in z.namelist())
    assert RAW_TOKEN.encode() not in blobs
    assert b"****1234" in blobs


def test_spill_onto_further_sheets(tmp_path: Path) -> None:
    target = tmp_path / "r.csv"
    with ReportWriter(target, extra_headers=["k"], sheet_row_cap=3) as w:
        for i in range(8):
            w.write(row(i + 2, extra={"k": f"v{i}"}))
        w.commit(info(tmp_path))
    book = openpyxl.load_workbook(target.with_suffix(".xlsx"))
    assert book.sheetnames == ["Summary", "Errors", "Rows", "Rows 2", "Rows 3"]
    seen = []
    for name, expected_rows in (("Rows", 3), ("Rows 2", 3), ("Rows 3", 2)):
        ws = book[name]
        values = list(ws.iter_rows(values_only=True))
        assert list(values[0]) == [*REPORT_COLUMNS, "k"]
        assert len(values) == expected_rows + 1
        assert ws.freeze_panes == "A2"
        assert ws.auto_filter.ref == f"A1:J{expected_rows + 1}"
        seen += [line[0] for line in values[1:]]
    assert seen == list(range(2, 10))
    assert summary_map(book["Summary"])["Total rows"] == 8


def test_exact_cap_does_not_add_an_empty_sheet(tmp_path: Path) -> None:
    target = tmp_path / "r.csv"
    with ReportWriter(target, extra_headers=[], sheet_row_cap=2) as w:
        w.write(row(2))
        w.write(row(3))
        w.commit(info(tmp_path))
    assert openpyxl.load_workbook(target.with_suffix(".xlsx")).sheetnames == [
        "Summary",
        "Errors",
        "Rows",
    ]


def test_empty_report_still_opens(tmp_path: Path) -> None:
    target = tmp_path / "r.csv"
    with ReportWriter(target, extra_headers=[]) as w:
        w.commit(info(tmp_path))
    book = openpyxl.load_workbook(target.with_suffix(".xlsx"))
    assert [c.value for c in book["Rows"][1]] == list(REPORT_COLUMNS)
    assert summary_map(book["Summary"])["Total rows"] == 0


def test_overlong_text_is_cut_at_excel_limit(tmp_path: Path) -> None:
    target = tmp_path / "r.csv"
    detail = "x" * 40_000
    with ReportWriter(target, extra_headers=[]) as w:
        w.write(row(2, RowStatus.FAILED, error_detail=detail))
        w.commit(info(tmp_path))
    ws = openpyxl.load_workbook(target.with_suffix(".xlsx"))["Rows"]
    assert ws.cell(row=2, column=REPORT_COLUMNS.index("error_detail") + 1).value == "x" * 32_767
    assert detail in target.read_text(encoding="utf-8-sig")


def test_bad_cap_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sheet_row_cap"):
        ReportWriter(tmp_path / "r.csv", extra_headers=[], sheet_row_cap=0)
    assert list(tmp_path.iterdir()) == []


def test_every_sheet_prints_landscape_one_page_wide_with_the_header_repeated(
    mixed_report: Path,
) -> None:
    book = openpyxl.load_workbook(mixed_report)
    assert book.sheetnames == ["Summary", "Errors", "Rows"]
    for ws in book.worksheets:
        assert ws.page_setup.orientation == "landscape", ws.title
        assert ws.sheet_properties.pageSetUpPr is not None
        assert ws.sheet_properties.pageSetUpPr.fitToPage, ws.title
        # fitToWidth="1" is the default, which xlsxwriter leaves out; fitToHeight="0": any.
        assert ws.page_setup.fitToWidth in (None, 1), ws.title
        assert ws.page_setup.fitToHeight == 0, ws.title
        assert ws.print_title_rows == "$1:$1", ws.title


def test_long_text_wraps_in_a_row_tall_enough_and_nothing_is_cut(tmp_path: Path) -> None:
    detail = "the API said something long about this order, " * 4
    target = tmp_path / "r.csv"
    with ReportWriter(target, extra_headers=[]) as w:
        w.write(row(2, RowStatus.FAILED, error_code="VALIDATION_ERROR", error_detail=detail))
        w.write(row(3))
        w.commit(info(tmp_path))
    ws = openpyxl.load_workbook(target.with_suffix(".xlsx"))["Rows"]
    cell = ws.cell(row=2, column=REPORT_COLUMNS.index("error_detail") + 1)
    assert cell.value == detail
    assert cell.alignment.wrap_text
    width = ws.column_dimensions[cell.column_letter].width
    assert width is not None
    assert width <= 41
    height = ws.row_dimensions[2].height
    assert height is not None
    assert height >= 15 * len(detail) / width
    assert ws.row_dimensions[3].height is None  # short rows keep the default height
