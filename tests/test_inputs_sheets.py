"""Workbooks: every row of every format, numbers and dates from cells, the sheet found."""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from pathlib import Path

import openpyxl
import pytest
import xlsxwriter
import xlwt
from odf.opendocument import OpenDocumentSpreadsheet
from odf.table import Table, TableCell, TableRow
from odf.text import P

from batch.errors import InputFileError
from batch.inputs import ERROR_CELL, FORMULA_WITHOUT_VALUE, NUMERIC_KEY, open_input

Cells = list[object]
ORDERS: list[Cells] = [[f"ORD{n}", f"tok_{n}"] for n in range(1, 9)]


def xlsx(path: Path, sheets: dict[str, list[Cells]], *, active: int = 0) -> Path:
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(row)
    wb.active = active
    wb.save(path)
    return path


def with_dimension(path: Path, ref: str) -> Path:
    """Rewrite sheet1.xml's <dimension> the way a stale writer leaves it."""
    out = path.with_name(f"stale-{path.name}")
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data, n = re.subn(
                    rb"<dimension ref=\"[^\"]*\"\s*/>", f'<dimension ref="{ref}"/>'.encode(), data
                )
                assert n == 1
            zout.writestr(item, data)
    return out


def keys(path: Path, **kwargs: object) -> list[tuple[int, str, str, str | None]]:
    return [
        (r.row, r.order_id, r.payment_source_token, r.problem.code if r.problem else None)
        for r in open_input(path, **kwargs).rows()  # type: ignore[arg-type]
    ]


@pytest.mark.parametrize("ref", ["A1", "A1:B3"])
def test_a_stale_dimension_loses_no_row(tmp_path: Path, ref: str) -> None:
    good = xlsx(
        tmp_path / "orders.xlsx", {"Orders": [["order_id", "payment_source_token"], *ORDERS]}
    )
    stale = with_dimension(good, ref)
    # openpyxl's read-only mode trusts the tag: this is the file that lost rows.
    assert len(list(openpyxl.load_workbook(stale, read_only=True).active.iter_rows())) < 9
    assert [k[:3] for k in keys(stale)] == [(n + 1, f"ORD{n}", f"tok_{n}") for n in range(1, 9)]


def test_numbers_and_dates_from_cells(tmp_path: Path) -> None:
    rows: list[Cells] = [
        ["order_id", "payment_source_token", "reference"],
        [12345.0, "tok_1", 2.5],  # a whole number reads as its digits
        ["ORD2", 1234567890123456789012, "r"],  # 22 digits, rounded by Excel
        [1.5, "tok_3", ""],  # a key with a fraction
        ["ORD4", "tok_4", dt.datetime(2024, 3, 5)],  # a date in a text field
        ["ORD5", "tok_5", dt.datetime(2024, 3, 5, 6, 7, 8)],
        [123456789012345.0, "tok_6", ""],  # 15 digits: kept
    ]
    path = xlsx(tmp_path / "orders.xlsx", {"Orders": rows})
    got = list(open_input(path).rows())
    assert [(r.order_id, r.problem.code if r.problem else None) for r in got] == [
        ("12345", None),
        ("ORD2", NUMERIC_KEY),
        ("1.5", NUMERIC_KEY),
        ("ORD4", None),
        ("ORD5", None),
        ("123456789012345", None),
    ]
    assert got[0].reference == "2.5"
    assert got[1].problem is not None
    assert got[1].problem.detail == (
        "payment_source_token is stored as a number of more than 15 digits, which Excel rounds,"
        " so it may not be what was typed; format the column as Text and re-enter the value"
    )
    assert got[2].problem is not None
    assert "a number with a fraction" in got[2].problem.detail
    assert [got[3].reference, got[4].reference] == ["2024-03-05", "2024-03-05T06:07:08"]


def test_a_formula_without_saved_value_is_not_called_blank(tmp_path: Path) -> None:
    rows: list[Cells] = [
        ["order_id", "payment_source_token"],
        ["ORD1", '="tok_"&"1"'],  # openpyxl writes the formula and no value
        ["ORD2", "tok_2"],
    ]
    path = xlsx(tmp_path / "orders.xlsx", {"Orders": rows})
    [first, second] = open_input(path).rows()
    assert first.problem is not None
    assert (first.problem.code, first.problem.detail) == (
        FORMULA_WITHOUT_VALUE,
        "payment_source_token: the cell is a formula with no saved value (the file was written"
        " by a program that does not calculate); open and save the file in Excel",
    )
    assert second.problem is None


def test_a_formula_with_a_saved_value_uses_it(tmp_path: Path) -> None:
    path = tmp_path / "orders.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet("Orders")
    ws.write_row(0, 0, ["order_id", "payment_source_token"])
    ws.write_string(1, 0, "ORD1")
    ws.write_formula(1, 1, '="tok_"&"1"', None, "tok_1")
    ws.write_string(2, 0, "ORD2")
    ws.write_formula(2, 1, "=NA()", None, "#N/A")
    wb.close()
    assert keys(path) == [(2, "ORD1", "tok_1", None), (3, "ORD2", "", ERROR_CELL)]


def test_xls_made_by_xlwt(tmp_path: Path) -> None:
    path = tmp_path / "orders.xls"
    book = xlwt.Workbook()
    ws = book.add_sheet("Orders")
    for r, row in enumerate([["Title: March payouts"], [], ["Order ID", "Payment Source Token"],
                             ["ORD1", "tok_1"], [12345.0, "tok_2"]]):  # fmt: skip
        for c, value in enumerate(row):
            ws.write(r, c, value)
    book.save(str(path))
    f = open_input(path)
    assert (f.kind, f.header_row, f.sheet_name) == ("xls", 3, "Orders")
    assert keys(path) == [(4, "ORD1", "tok_1", None), (5, "12345", "tok_2", None)]


def ods(path: Path, sheets: dict[str, list[list[str | float]]]) -> Path:
    doc = OpenDocumentSpreadsheet()
    for name, rows in sheets.items():
        table = Table(name=name)
        for row in rows:
            tr = TableRow()
            for value in row:
                if isinstance(value, float):
                    cell = TableCell(valuetype="float", value=str(value))
                else:
                    cell = TableCell(valuetype="string")
                    cell.addElement(P(text=value))
                tr.addElement(cell)
            table.addElement(tr)
        doc.spreadsheet.addElement(table)
    doc.save(str(path))
    return path


def test_ods_made_by_odfpy(tmp_path: Path) -> None:
    path = ods(
        tmp_path / "orders.ods",
        {
            "Cover": [["Payouts for March"], ["prepared by finance"]],
            "Data": [["Order ID", "Payment Source Token"], ["ORD1", "tok_1"], [42.0, "tok_2"]],
        },
    )
    f = open_input(path)
    assert (f.kind, f.sheet_name, f.header_row) == ("ods", "Data", 1)
    assert keys(path) == [(2, "ORD1", "tok_1", None), (3, "42", "tok_2", None)]


def test_cover_sheet_and_title_rows_before_the_data(tmp_path: Path) -> None:
    path = xlsx(
        tmp_path / "orders.xlsx",
        {
            "Cover": [["Payouts"], ["order_id is the Commerce Layer id"]],
            "Data": [
                ["Payouts for March"],
                [],
                ["Order ID", "Payment Source Token"],
                ["ORD1", "tok_1"],
            ],
        },
    )
    f = open_input(path)
    assert (f.sheet_name, f.header_row) == ("Data", 3)
    assert keys(path) == [(4, "ORD1", "tok_1", None)]


def test_two_qualifying_sheets_name_the_active_one(tmp_path: Path) -> None:
    header = ["order_id", "payment_source_token"]
    sheets = {"January": [header, ["ORD1", "tok_1"]], "February": [header, ["ORD2", "tok_2"]]}
    path = xlsx(tmp_path / "orders.xlsx", sheets, active=1)
    with pytest.raises(InputFileError) as info:
        open_input(path)
    assert str(info.value) == (
        "orders.xlsx: sheets 'January', 'February' all have the required columns;"
        " choose one with --sheet (the workbook was saved with sheet 'February' active)"
    )
    assert keys(path, sheet="February") == [(2, "ORD2", "tok_2", None)]


def test_no_qualifying_sheet_lists_every_sheet_and_its_first_row(tmp_path: Path) -> None:
    sheets: dict[str, list[Cells]] = {
        "Cover": [["Payouts for March"]],
        "Data": [["Order #", "Token", "Amount"], ["1001", "tok_1", 5]],
        "Empty": [],
    }
    path = xlsx(tmp_path / "orders.xlsx", sheets)
    with pytest.raises(InputFileError) as info:
        open_input(path)
    assert str(info.value) == (
        "orders.xlsx: no sheet has the required column(s) order_id, payment_source_token in its"
        " first 20 rows (sheets and their first rows: 'Cover': Payouts for March;"
        " 'Data': Order #, Token, Amount; 'Empty': (empty))"
        '; "Order #" looks like order numbers: add --match number'
        ' (or --column order_id="Order #" if it holds order IDs)'
        '; if "Token" holds the payment_source_token, add --column payment_source_token="Token"'
    )
    by_number = open_input(path, match="number", columns={"payment_source_token": "Token"})
    assert [(r.order_number, r.order_id) for r in by_number.rows()] == [("1001", "")]


def test_report_xlsx_fed_back_is_refused(tmp_path: Path) -> None:
    header = ["row", "order_id", "status", "external_payment_id", "http_status", "error_code",
              "error_detail", "attempts", "payment_source_token"]  # fmt: skip
    sheets = {
        "Summary": [["kind", "run"]],
        "Rows": [header, [2, "ORD1", "created", "p1", 201, "", "", 1, "****1234"]],
    }
    path = xlsx(tmp_path / "report.xlsx", sheets)
    with pytest.raises(
        InputFileError, match=r"^report\.xlsx: this is a paybatch report \(its columns"
    ):
        open_input(path)


def test_a_sheet_starting_at_column_b_keeps_column_numbers(tmp_path: Path) -> None:
    path = tmp_path / "orders.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws["B3"], ws["C3"], ws["D3"] = "order_id", "payment_source_token", "reference"
    ws["B4"], ws["C4"], ws["D4"] = "ORD1", "tok_1", "=1+1"  # no saved value
    ws["B5"], ws["C5"], ws["E5"] = "ORD2", "tok_2", "spill"
    wb.save(path)
    f = open_input(path)
    assert (f.header_row, f.headers) == (3, ["", "order_id", "payment_source_token", "reference"])
    rows = list(f.rows())
    assert [(r.row, r.order_id, r.problem and r.problem.code) for r in rows] == [
        (4, "ORD1", FORMULA_WITHOUT_VALUE),
        (5, "ORD2", "TOO_MANY_CELLS"),
    ]
    assert rows[1].problem is not None
    assert rows[1].problem.detail.startswith("column 5 has a value but the header has only 4")
