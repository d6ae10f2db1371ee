"""File-level problems: one exact line naming the file, no traceback material."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import openpyxl
import pytest

from batch.errors import InputFileError, UsageError
from batch.inputs import open_input


def refusal(path: Path, **kwargs: object) -> str:
    def read_all() -> None:
        list(open_input(path, **kwargs).rows())  # type: ignore[arg-type]

    with pytest.raises(InputFileError) as info:
        read_all()
    message = str(info.value)
    assert "\n" not in message
    assert info.value.__cause__ is None
    return message


def test_missing_required_column(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("Order ID,Token,Notes\nA,t,n\n", encoding="utf-8")
    assert refusal(path) == (
        "orders.csv: missing required column(s): payment_source_token"
        ' (found: Order ID, Token, Notes); if "Token" holds the payment_source_token,'
        ' add --column payment_source_token="Token"'
    )


def test_missing_both_required_columns(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("Amount;Notes\n1;x\n", encoding="utf-8")
    assert refusal(path) == (
        "orders.csv: missing required column(s): order_id, payment_source_token"
        " (found: Amount, Notes)"
    )


def test_not_found(tmp_path: Path) -> None:
    assert refusal(tmp_path / "nope.csv") == "nope.csv: file not found"


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()
    assert refusal(tmp_path / "dir.csv") == "dir.csv: is a directory, not a file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "locked.csv"
    path.write_text("order_id,payment_source_token\n", encoding="utf-8")
    path.chmod(0)
    assert refusal(path) == "locked.csv: permission denied"


def test_permission_denied_message_from_os_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root ignores file modes, so simulate what open() raises for everyone else.
    def deny(self: Path, *args: object, **kwargs: object) -> object:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", deny)
    assert refusal(tmp_path / "locked.csv") == "locked.csv: permission denied"


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\r\n\r\n", b";;;\n;;\n", b"\xff\xfe"])
def test_empty(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "orders.csv"
    path.write_bytes(content)
    assert refusal(path) == "orders.csv: the file is empty (no header row)"


def test_binary(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_bytes(b"order_id,payment_source_token\n\x00\x00\x00\rIHDR")
    assert refusal(path) == (
        "orders.csv: not a text file or a workbook (it contains NUL bytes;"
        " UTF-16 needs a byte-order mark)"
    )


def test_utf16_without_bom_is_refused_as_binary(tmp_path: Path) -> None:
    path = tmp_path / "orders.txt"
    path.write_bytes("order_id\tpayment_source_token\n".encode("utf-16-le"))
    assert refusal(path).startswith("orders.txt: not a text file or a workbook")


def test_not_text(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_bytes(b"order_id,payment_source_token\n\x81\x8d\x8f\x90\x9d\n")  # not cp1252
    assert refusal(path) == (
        "orders.csv: not text in UTF-8, UTF-16 or Windows-1252, and not a workbook"
    )


def test_damaged_xls(tmp_path: Path) -> None:
    path = tmp_path / "orders.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64)
    assert refusal(path) == (
        "orders.xls: cannot be read as an Excel 97-2003 (.xls) workbook (damaged or"
        " password-protected); open it in Excel and save it again"
    )


def test_corrupt_xlsx_truncated(tmp_path: Path) -> None:
    good = tmp_path / "good.xlsx"
    wb = openpyxl.Workbook()
    wb.worksheets[0].append(["order_id", "payment_source_token"])
    wb.save(good)
    path = tmp_path / "orders.xlsx"
    path.write_bytes(good.read_bytes()[:300])
    assert refusal(path) == (
        "orders.xlsx: a damaged zip archive, so not a readable workbook (was it copied completely?)"
    )


def test_zip_that_is_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "orders.xlsx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("hello.txt", "hi")
    assert refusal(path) == (
        "orders.xlsx: a zip archive that holds no workbook (neither Excel nor OpenDocument)"
    )


def test_wrong_sheet_lists_sheets(tmp_path: Path) -> None:
    path = tmp_path / "orders.xlsx"
    wb = openpyxl.Workbook()
    wb.worksheets[0].title = "Orders"
    wb.create_sheet("Notes")
    wb.save(path)
    assert refusal(path, sheet="Feb") == (
        "orders.xlsx: no sheet named 'Feb' (sheets found: Orders, Notes)"
    )


def test_sheet_for_a_csv(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("order_id,payment_source_token\n", encoding="utf-8")
    assert refusal(path, sheet="Orders") == (
        "orders.csv: a sheet was chosen ('Orders') but the file is CSV text, which has none"
    )


def test_duplicate_known_column(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("Order ID,order-id,Payment Source Token\n", encoding="utf-8")
    assert refusal(path) == (
        "orders.csv: column order_id appears more than once (headers: Order ID, order-id)"
    )


def test_mapped_header_not_found(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("Order,Payment Source Token\n", encoding="utf-8")
    assert refusal(path, columns={"order_id": "Order Ref"}) == (
        "orders.csv: column 'Order Ref' (given for order_id) not found"
        " (found: Order, Payment Source Token)"
    )


def test_malformed_csv_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    huge = "x" * 200_000  # past the csv module's field limit
    path.write_text(f'order_id,payment_source_token\nA,t\nB,"{huge}"\n', encoding="utf-8")
    assert refusal(path) == (
        "orders.csv: row 3: malformed CSV (field larger than field limit (131072))"
    )


def test_file_changed_between_open_and_rows(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("order_id,payment_source_token\nA,t\n", encoding="utf-8")
    f = open_input(path)
    path.write_text("order_id,payment_source_token\nA,t\nB,u\n", encoding="utf-8")
    with pytest.raises(InputFileError, match=r"^orders\.csv: the file changed while"):
        list(f.rows())


def test_unknown_mapping_target_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("order_id,payment_source_token\n", encoding="utf-8")
    with pytest.raises(UsageError, match="unknown column 'amount'"):
        open_input(path, columns={"amount": "Amount"})


def test_messages_never_echo_cell_values(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("tok_secret_header_value\nrow\n", encoding="utf-8")
    # Headers are named (they are not secrets) but no data cell is.
    assert "row" not in refusal(path).split("found:")[1]
