"""Real-shaped exports (tests/data and generated XLSX) read back exactly as a person typed them."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path

import openpyxl
import xlsxwriter

from batch.inputs import BLANK_ORDER_ID, CARD_NUMBER_TOKEN, INVALID_JSON, open_input
from batch.rows import DUPLICATE_ORDER, InputRow

DATA = Path(__file__).parent / "data"


def summary(rows: list[InputRow]) -> list[tuple[object, ...]]:
    return [
        (r.row, r.order_id, r.payment_source_token, r.problem.code if r.problem else None)
        for r in rows
    ]


def test_excel_csv_utf8_with_bom_and_semicolons() -> None:
    f = open_input(DATA / "excel_utf8_bom_semicolon.csv")
    assert (f.encoding, f.delimiter) == ("utf-8-sig", ";")
    assert f.headers == ["Order ID", "Payment Source Token", "Reference", "Notes"]
    assert f.extra_headers == ["Notes"]
    rows = list(f.rows())
    # Row 3 is blank but still counts; the quoted two-line note is one spreadsheet row (4).
    assert summary(rows) == [
        (2, "0012", "tok_visa_0001", None),
        (4, "NA", "tok_mc_0002", None),
        (5, "ORD-003", "tok_amex_0003", None),
    ]
    assert rows[0].reference == "INV-2024-001"
    assert rows[0].extra == {"Notes": "1 234,50 €"}
    assert rows[1].reference is None
    assert rows[1].extra == {"Notes": 'Paid in two parts;\r\nsee "March" email'}
    assert rows[2].reference == "=1+1"
    assert rows[2].extra == {"Notes": "null"}
    assert f.count() == 3


def test_excel_comma_delimited_cp1252() -> None:
    f = open_input(DATA / "excel_cp1252_comma.csv")
    assert (f.encoding, f.delimiter) == ("cp1252", ",")
    rows = list(f.rows())
    assert summary(rows) == [(2, "00451", "tok_café_01", None), (3, "00452", "tok_02", None)]
    assert rows[0].reference_origin == "Café Crème"
    assert rows[0].extra == {"Notes": "€ 12"}
    assert rows[1].reference_origin == "Smith, J."
    assert rows[1].extra == {"Notes": "– naïve ‘quote’"}


def test_excel_unicode_text_utf16_tabs() -> None:
    f = open_input(DATA / "excel_unicode_text.txt")
    assert (f.encoding, f.delimiter) == ("utf-16", "\t")
    rows = list(f.rows())
    assert summary(rows) == [(2, "A-1", "tok_ü1", None), (4, "A-2", "tok_2", None)]
    assert rows[0].metadata == {"batch": "märz"}
    assert rows[0].extra == {"Notes": "日本"}
    assert rows[1].metadata is None
    assert rows[1].extra == {"Notes": "N/A"}


def test_google_sheets_export() -> None:
    rows = list(open_input(DATA / "google_sheets.csv").rows())
    assert summary(rows) == [
        (2, "GS-1", "tok_g1", None),
        (3, "GS-2", "tok_g2", INVALID_JSON),
        (4, "GS-3", "4111-1111-1111-1111", CARD_NUMBER_TOKEN),
    ]
    assert rows[0].metadata == {"source": "sheets", "n": 1}
    assert rows[0].options == {}
    assert rows[0].attributes() == {
        "payment_source_token": "tok_g1",
        "options": {},
        "metadata": {"source": "sheets", "n": 1},
    }


def test_libreoffice_quoted_with_repeat_order() -> None:
    rows = list(open_input(DATA / "libreoffice_quoted.csv").rows())
    assert summary(rows) == [
        (2, "LO-1", "tok_lo1", None),
        (3, "LO-2", "tok_lo2", None),
        (4, "LO-1", "tok_lo3", DUPLICATE_ORDER),
    ]
    assert rows[0].extra == {"Comment": "line one\nline two"}
    assert rows[1].reference == 'REF "7"'
    assert rows[2].problem is not None
    assert rows[2].problem.detail == "order_id LO-1 already on row 2"


def test_cr_line_endings_pipes_utf16_be() -> None:
    f = open_input(DATA / "mac_cr_pipe_utf16be.txt")
    assert f.delimiter == "|"
    assert summary(list(f.rows())) == [(2, "M-1", "tok_m1", None), (4, "M-2", "tok_m2", None)]


def test_sha256_is_of_the_file_bytes() -> None:
    path = DATA / "google_sheets.csv"
    assert open_input(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_rows_restart_from_the_top_each_call() -> None:
    f = open_input(DATA / "libreoffice_quoted.csv")
    first = list(f.rows())
    assert list(f.rows()) == first
    assert f.count() == 3


def human_workbook(path: Path) -> None:
    """What finance sends: a title-less sheet with human headers, numbers for ids, notes."""
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet("March payouts")
    date = wb.add_format({"num_format": "yyyy-mm-dd"})
    ws.write_row(0, 0, ["  Order ID ", "Payment-Source Token", "Reference", "Notes", None, ""])
    ws.write_number(1, 0, 12345)
    ws.write_string(1, 1, " tok_x1\u00a0")
    ws.write_number(1, 2, 2.5)
    ws.write_datetime(1, 3, dt.datetime(2024, 3, 5), date)
    # Row 3 left blank on purpose; row 4 has text that looks like other things.
    ws.write_string(3, 0, "0042")
    ws.write_string(3, 1, "tok_x2")
    ws.write_string(3, 2, "NA")
    ws.write_boolean(3, 3, True)
    ws.write_number(4, 0, 12345)
    ws.write_string(4, 1, "tok_x3")
    ws.write_string(5, 3, "a note on an otherwise empty row")
    wb.add_worksheet("Notes").write_string(0, 0, "not orders")
    wb.close()


def test_xlsx_with_human_headers_blank_rows_numbers_and_notes(tmp_path: Path) -> None:
    path = tmp_path / "payouts.xlsx"
    human_workbook(path)
    f = open_input(path)
    assert f.headers == ["Order ID", "Payment-Source Token", "Reference", "Notes"]
    rows = list(f.rows())
    assert summary(rows) == [
        (2, "12345", "tok_x1", None),
        (4, "0042", "tok_x2", None),
        (5, "12345", "tok_x3", DUPLICATE_ORDER),
        (6, "", "", BLANK_ORDER_ID),
    ]
    assert rows[0].reference == "2.5"
    assert rows[0].extra == {"Notes": "2024-03-05"}
    assert rows[1].reference == "NA"
    assert rows[1].extra == {"Notes": "TRUE"}
    assert rows[3].extra == {"Notes": "a note on an otherwise empty row"}
    assert f.count() == 4


def test_xlsx_named_sheet(tmp_path: Path) -> None:
    path = tmp_path / "book.xlsx"
    wb = openpyxl.Workbook()
    wb.worksheets[0].append(["unrelated"])
    ws = wb.create_sheet("Orders")
    ws.append(["order_id", "payment_source_token"])
    ws.append([7.0, "tok_7"])
    ws.append([dt.datetime(2024, 1, 2, 3, 4, 5), "tok_8"])
    wb.save(path)
    rows = list(open_input(path, sheet="Orders").rows())
    assert summary(rows) == [(2, "7", "tok_7", None), (3, "2024-01-02T03:04:05", "tok_8", None)]


def test_content_wins_over_extension(tmp_path: Path) -> None:
    xlsx_as_csv = tmp_path / "really_a_workbook.csv"
    human_workbook(xlsx_as_csv)
    assert open_input(xlsx_as_csv).kind == "xlsx"
    assert [r.order_id for r in open_input(xlsx_as_csv).rows()][:2] == ["12345", "0042"]
    csv_as_xlsx = tmp_path / "really_text.xlsx"
    shutil.copy(DATA / "google_sheets.csv", csv_as_xlsx)
    f = open_input(csv_as_xlsx)
    assert (f.kind, f.delimiter) == ("text", ",")
    assert f.count() == 3
