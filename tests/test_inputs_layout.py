"""Text files: where the header is, what a file really is, and lines that must not vanish."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from batch.errors import InputFileError, UsageError
from batch.inputs import BLANK_ORDER_NUMBER, open_input
from batch.rows import DUPLICATE_ORDER, REPEATED_HEADER, REPORT_COLUMNS, RowStatus


def write(tmp_path: Path, text: str, name: str = "orders.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def refusal(path: Path, **kwargs: object) -> str:
    with pytest.raises(InputFileError) as info:
        list(open_input(path, **kwargs).rows())  # type: ignore[arg-type]
    assert info.value.__cause__ is None
    return str(info.value)


def summary(path: Path, **kwargs: object) -> list[tuple[int, str, str, str | None]]:
    return [
        (r.row, r.order_id or r.order_number, r.payment_source_token, r.problem and r.problem.code)
        for r in open_input(path, **kwargs).rows()  # type: ignore[arg-type]
    ]


def test_sep_line_names_the_delimiter_and_is_not_a_row(tmp_path: Path) -> None:
    path = write(tmp_path, "sep=;\r\norder_id;payment_source_token\r\nA,1;tok_a\r\n")
    f = open_input(path)
    assert (f.delimiter, f.header_row) == (";", 1)
    # Excel hides the sep= line: the header is row 1 there, the data row 2.
    assert summary(path) == [(2, "A,1", "tok_a", "COMMA_IN_VALUE")]


def test_sep_line_with_another_character(tmp_path: Path) -> None:
    path = write(tmp_path, '"sep=|"\norder_id|payment_source_token\nA|tok_a\n')
    assert summary(path) == [(2, "A", "tok_a", None)]


def test_title_rows_above_the_header(tmp_path: Path) -> None:
    text = "Payouts for March\n;\nprepared by finance\norder_id;payment_source_token\nA;tok_a\n"
    path = write(tmp_path, text)
    f = open_input(path)
    assert (f.delimiter, f.header_row) == (";", 4)
    assert summary(path) == [(5, "A", "tok_a", None)]


def test_header_is_looked_for_in_the_first_20_rows_only(tmp_path: Path) -> None:
    path = write(tmp_path, "title\n" * 20 + "order_id,payment_source_token\nA,tok_a\n")
    assert refusal(path).startswith("orders.csv: missing required column(s): order_id,")
    path = write(tmp_path, "title\n" * 19 + "order_id,payment_source_token\nA,tok_a\n")
    assert summary(path) == [(21, "A", "tok_a", None)]


def test_repeated_header_row_is_skipped_not_an_order(tmp_path: Path) -> None:
    text = (
        "Order ID,Payment Source Token\nA,tok_a\n"
        "Order ID,Payment Source Token\nB,tok_b\nORDER ID,payment source token\n"
    )
    path = write(tmp_path, text)
    rows = list(open_input(path).rows())
    assert [(r.row, r.problem and r.problem.code) for r in rows] == [
        (2, None),
        (3, REPEATED_HEADER),
        (4, None),
        (5, REPEATED_HEADER),
    ]
    assert [r.status_if_refused for r in rows] == [None, RowStatus.SKIPPED, None, RowStatus.SKIPPED]


def test_an_order_named_like_the_header_with_another_token_is_an_order(tmp_path: Path) -> None:
    path = write(tmp_path, "order_id,payment_source_token\norder_id,tok_a\norder_id,tok_b\n")
    assert summary(path) == [
        (2, "order_id", "tok_a", None),
        (3, "order_id", "tok_b", DUPLICATE_ORDER),
    ]


@pytest.mark.parametrize("tail", ["\x1a", "\n\x1a", "\r\n\x1a"])
def test_dos_end_of_file_marker_is_ignored(tmp_path: Path, tail: str) -> None:
    path = write(tmp_path, "order_id,payment_source_token\r\nA,tok_a\r\nB,tok_b" + tail)
    assert summary(path) == [(2, "A", "tok_a", None), (3, "B", "tok_b", None)]


def test_a_control_character_elsewhere_is_still_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "order_id,payment_source_token\nA,tok\x1a_a\nB,tok_b\n")
    assert summary(path)[0][3] == "CONTROL_CHARACTER"


def test_unmatched_quote_stops_the_file(tmp_path: Path) -> None:
    text = 'order_id,payment_source_token,reference\nA,tok_a,"INV-1\nB,tok_b,INV-2\nC,tok_c,INV-3\n'
    assert refusal(write(tmp_path, text)) == (
        "orders.csv: row 2: the quoted reference value runs over 2 following line(s) that"
        ' look like rows; it likely starts with an unmatched quote ("); fix it and run again'
    )


def test_unmatched_quote_closed_later_still_stops_the_file(tmp_path: Path) -> None:
    text = 'order_id,payment_source_token,reference\nA,tok_a,"INV-1\nB,tok_b,"x"\nC,tok_c,r\n'
    assert refusal(write(tmp_path, text)).startswith("orders.csv: row 2: the quoted reference")


def test_a_real_multiline_cell_is_kept(tmp_path: Path) -> None:
    text = 'order_id,payment_source_token,reference\nA,tok_a,"line one\nline two"\nB,tok_b,r\n'
    rows = list(open_input(write(tmp_path, text)).rows())
    assert [(r.row, r.reference) for r in rows] == [(2, "line one\nline two"), (3, "r")]


def test_our_report_fed_back_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, ",".join(REPORT_COLUMNS) + "\n2,ORD1,created,p1,201,,,1,****1234\n")
    assert refusal(path) == (
        "orders.csv: this is a paybatch report (its columns start row, order_id, status,"
        " external_payment_id), not an orders file; reports hold masked tokens, so fix the"
        " original file and run that again"
    )


def test_our_error_file_fed_back_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "Row,Order ID,Status,Error Code,Error Detail\n2,ORD1,invalid,X,y\n")
    assert refusal(path).startswith("orders.csv: this is a paybatch error file (its columns")


def test_an_export_with_its_own_status_column_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, "row,order_id,status,payment_source_token\n1,A,placed,tok_a\n")
    assert summary(path) == [(2, "A", "tok_a", None)]


DISGUISES = {
    "html.xls": (
        "<!DOCTYPE html><html><body><table><tr><td>order_id</td></tr></table></body></html>",
        "html.xls: an HTML web page, not a spreadsheet (web exports are often saved as .xls);"
        " open it in Excel and save it as .xlsx or CSV",
    ),
    "table.xls": (
        "<table border=1><tr><th>order_id</th><th>payment_source_token</th></tr></table>",
        "table.xls: an HTML web page, not a spreadsheet (web exports are often saved as .xls);"
        " open it in Excel and save it as .xlsx or CSV",
    ),
    "2003.xls": (
        '<?xml version="1.0"?>\n<?mso-application progid="Excel.Sheet"?>\n<Workbook'
        ' xmlns="urn:schemas-microsoft-com:office:spreadsheet"><Worksheet ss:Name="Orders">'
        '<Table><Row><Cell><Data ss:Type="String">order_id</Data></Cell></Row></Table>'
        "</Worksheet></Workbook>",
        "2003.xls: an Excel 2003 XML spreadsheet (SpreadsheetML), which paybatch does not"
        " read; open it in Excel and save it as .xlsx or CSV",
    ),
    "data.xml": (
        '<?xml version="1.0"?><orders><order id="1"/></orders>',
        "data.xml: an XML document, not a spreadsheet or CSV file",
    ),
}


@pytest.mark.parametrize("name", sorted(DISGUISES))
def test_markup_is_named_for_what_it_is(tmp_path: Path, name: str) -> None:
    text, message = DISGUISES[name]
    assert refusal(write(tmp_path, text, name)) == message


@pytest.mark.parametrize(
    ("head", "what"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "a PDF document"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "a PNG image"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "a JPEG image"),
    ],
)
def test_documents_and_images_are_named(tmp_path: Path, head: bytes, what: str) -> None:
    path = tmp_path / "orders.xlsx"
    path.write_bytes(head + b"\x00" * 32)
    assert refusal(path) == (
        f"orders.xlsx: {what}, not a spreadsheet or CSV file; export the orders as .xlsx or CSV"
    )


@pytest.mark.parametrize(
    ("parts", "what"),
    [
        (
            {"mimetype": "application/vnd.oasis.opendocument.text"},
            "an OpenDocument text document (.odt)",
        ),
        ({"[Content_Types].xml": "<Types/>", "word/document.xml": "<w/>"}, "a Word document"),
    ],
)
def test_office_documents_that_are_not_spreadsheets(
    tmp_path: Path, parts: dict[str, str], what: str
) -> None:
    path = tmp_path / "orders.ods"
    with zipfile.ZipFile(path, "w") as z:
        for part, text in parts.items():
            z.writestr(part, text)
    assert refusal(path) == (
        f"orders.ods: {what}, not a spreadsheet or CSV file; export the orders as .xlsx or CSV"
    )


def test_missing_columns_suggest_a_mapping_to_paste(tmp_path: Path) -> None:
    path = write(tmp_path, "Order Ref,Card Token,Amount\nA,tok_a,1\n")
    assert refusal(path) == (
        "orders.csv: missing required column(s): order_id, payment_source_token"
        " (found: Order Ref, Card Token, Amount)"
        '; if "Order Ref" holds the order_id, add --column order_id="Order Ref"'
        '; if "Card Token" holds the payment_source_token,'
        ' add --column payment_source_token="Card Token"'
    )


@pytest.mark.parametrize("header", ["Order Number", "Order #", "order no", "Order No."])
def test_match_by_number(tmp_path: Path, header: str) -> None:
    text = f"Order ID,{header},Payment Source Token\nid1,1001,tok_a\nid2,1001,tok_b\nid3,,tok_c\n"
    path = write(tmp_path, text)
    f = open_input(path, match="number")
    rows = list(f.rows())
    assert [(r.order_id, r.order_number, r.problem and r.problem.code) for r in rows] == [
        ("", "1001", None),
        ("", "1001", DUPLICATE_ORDER),
        ("", "", BLANK_ORDER_NUMBER),
    ]
    assert rows[1].problem is not None
    assert rows[1].problem.detail == "order_number 1001 already on row 2"
    assert rows[0].extra == {"Order ID": "id1"}  # the other key is carried, not used


def test_match_by_number_checks_the_number_like_a_key(tmp_path: Path) -> None:
    path = write(tmp_path, 'Nr,payment_source_token\n"1001,1002",tok_a\n')
    rows = list(open_input(path, match="number", columns={"order_number": "Nr"}).rows())
    assert rows[0].problem is not None
    assert rows[0].problem.detail.startswith("order_number has a comma at position 5")


def test_a_mapping_for_the_key_not_in_use_is_a_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path, "order_id,payment_source_token\nA,tok_a\n")
    with pytest.raises(UsageError, match="only used with --match number"):
        open_input(path, columns={"order_number": "Nr"})


def test_rows_matched_by_number_have_distinct_fingerprints(tmp_path: Path) -> None:
    path = write(tmp_path, "Order #,payment_source_token\n1001,tok_a\n1002,tok_a\n")
    first, second = open_input(path, match="number").rows()
    assert first.fingerprint() != second.fingerprint()


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_missing_columns_name_the_likeliest_header_row(tmp_path: Path, delimiter: str) -> None:
    text = "Payouts for March\nOrder Ref,Card Token,Amount\nA,tok_a,1\n"
    path = write(tmp_path, text.replace(",", delimiter))
    assert refusal(path).startswith(
        "orders.csv: missing required column(s): order_id, payment_source_token"
        " (found: Order Ref, Card Token, Amount);"
    )
