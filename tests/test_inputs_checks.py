"""Row checks, header normalisation and the column mapping."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from batch.errors import UsageError
from batch.inputs import (
    BLANK_ORDER_ID,
    BLANK_TOKEN,
    CARD_NUMBER_TOKEN,
    INVALID_JSON,
    MAX_JSON_BYTES,
    MAX_TEXT_CHARS,
    TOO_LONG,
    TOO_MANY_CELLS,
    normalise_header,
    open_input,
    parse_column_mapping,
)
from batch.rows import DUPLICATE_ORDER, InputRow, RowStatus

HEADER = [
    "order_id",
    "payment_source_token",
    "reference",
    "reference_origin",
    "metadata",
    "options",
]


def read(tmp_path: Path, *records: list[str], header: list[str] = HEADER) -> list[InputRow]:
    path = tmp_path / "orders.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(records)
    return list(open_input(path).rows())


def one(tmp_path: Path, record: list[str]) -> InputRow:
    [row] = read(tmp_path, record)
    return row


def test_valid_row_is_typed(tmp_path: Path) -> None:
    row = one(tmp_path, ["ORD1", "tok_1", "INV-1", "erp", '{"a": [1, 2]}', ""])
    assert row == InputRow(
        row=2,
        order_id="ORD1",
        payment_source_token="tok_1",
        reference="INV-1",
        reference_origin="erp",
        metadata={"a": [1, 2]},
        options=None,
    )


def test_blank_order_id(tmp_path: Path) -> None:
    row = one(tmp_path, ["  ", "tok_1", "INV-1", "", "", ""])
    assert row.problem is not None
    assert (row.problem.code, row.problem.detail) == (BLANK_ORDER_ID, "order_id is blank")
    assert (row.order_id, row.payment_source_token, row.reference) == ("", "tok_1", "INV-1")
    assert row.status_if_refused is RowStatus.INVALID


def test_blank_token(tmp_path: Path) -> None:
    row = one(tmp_path, ["ORD1", "\u00a0", "", "", "", ""])
    assert row.problem is not None
    assert (row.problem.code, row.problem.detail) == (
        BLANK_TOKEN,
        "payment_source_token is blank",
    )


@pytest.mark.parametrize(
    "token",
    ["4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111", "5500000000004", "3" * 19],
)
def test_card_number_token_is_refused_without_echo(tmp_path: Path, token: str) -> None:
    row = one(tmp_path, ["ORD1", token, "", "", "", ""])
    assert row.problem is not None
    assert row.problem.code == CARD_NUMBER_TOKEN
    assert "payment_source_token" in row.problem.detail
    digits = token.replace(" ", "").replace("-", "")
    assert digits[-4:] not in row.problem.detail
    assert token not in row.problem.detail


@pytest.mark.parametrize("token", ["411111111111", "4" * 20, "tok_4111111111111111", "12-34"])
def test_tokens_that_are_not_card_numbers(tmp_path: Path, token: str) -> None:
    assert one(tmp_path, ["ORD1", token, "", "", "", ""]).problem is None


@pytest.mark.parametrize(
    ("column", "text", "detail"),
    [
        ("metadata", "[1]", "metadata must be a JSON object {...}, not a list"),
        ("metadata", '"x"', "metadata must be a JSON object {...}, not a string"),
        ("options", "3", "options must be a JSON object {...}, not a number"),
        ("options", "null", "options must be a JSON object {...}, not null"),
        ("metadata", "{'a': 1}", "metadata is not valid JSON (Expecting property name"),
        ("options", '{"a": 1', "options is not valid JSON (Expecting ',' delimiter"),
        ("metadata", '{"a": NaN}', "metadata is not valid JSON (NaN is not allowed in JSON)"),
    ],
)
def test_invalid_json(tmp_path: Path, column: str, text: str, detail: str) -> None:
    record = ["ORD1", "tok_1", "", "", "", ""]
    record[HEADER.index(column)] = text
    row = one(tmp_path, record)
    assert row.problem is not None
    assert row.problem.code == INVALID_JSON
    assert row.problem.detail.startswith(detail)
    assert getattr(row, column) is None


@pytest.mark.parametrize("column", ["order_id", "payment_source_token", "reference"])
def test_too_long_text(tmp_path: Path, column: str) -> None:
    record = ["ORD1", "tok_1", "", "", "", ""]
    record[HEADER.index(column)] = "a" * (MAX_TEXT_CHARS + 1)
    row = one(tmp_path, record)
    assert row.problem is not None
    assert (row.problem.code, row.problem.detail) == (
        TOO_LONG,
        f"{column} is 256 characters long; the limit is 255",
    )
    record[HEADER.index(column)] = "a" * MAX_TEXT_CHARS
    assert one(tmp_path, record).problem is None


def test_too_long_json_counts_utf8_bytes(tmp_path: Path) -> None:
    fits = json.dumps({"n": "é" * ((MAX_JSON_BYTES - 20) // 2)}, ensure_ascii=False)
    assert one(tmp_path, ["ORD1", "tok_1", "", "", fits, ""]).problem is None
    big = json.dumps({"n": "é" * (MAX_JSON_BYTES // 2)}, ensure_ascii=False)
    row = one(tmp_path, ["ORD1", "tok_1", "", "", "", big])
    assert row.problem is not None
    assert row.problem.code == TOO_LONG
    assert row.problem.detail.startswith("options is ")
    assert row.problem.detail.endswith(f"bytes long; the limit is {MAX_JSON_BYTES}")


def test_duplicate_orders_flag_later_rows_only(tmp_path: Path) -> None:
    rows = read(
        tmp_path,
        ["A", "tok_1", "", "", "", ""],
        ["B", "", "", "", "", ""],
        ["A", "tok_2", "", "", "", ""],
        ["B", "tok_3", "", "", "", ""],
        ["a", "tok_4", "", "", "", ""],
    )
    got = [(r.order_id, r.problem.code if r.problem else None) for r in rows]
    assert got == [
        ("A", None),
        ("B", BLANK_TOKEN),
        ("A", DUPLICATE_ORDER),
        ("B", DUPLICATE_ORDER),  # the first B is invalid, but it was there first
        ("a", None),  # Commerce Layer ids are case-sensitive
    ]
    assert rows[2].problem is not None
    assert rows[2].problem.detail == "order_id A already on row 2"
    assert rows[2].payment_source_token == "tok_2"
    assert rows[2].status_if_refused is RowStatus.DUPLICATE


def test_too_many_cells(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("order_id,payment_source_token,reference\nA,tok,Smith, J.\nB,tok,x,,\n")
    rows = list(open_input(path).rows())
    assert rows[0].problem is not None
    assert rows[0].problem.code == TOO_MANY_CELLS
    assert rows[0].problem.detail.startswith("column 4 has a value but the header has only 3")
    assert rows[1].problem is None  # trailing empty cells are fine


def test_short_rows_are_padded(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("order_id,payment_source_token,Notes\nA,tok\n", encoding="utf-8")
    [row] = open_input(path).rows()
    assert (row.problem, row.extra) == (None, {"Notes": ""})


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (" Order ID ", "order_id"),
        ("Payment-Source Token", "payment_source_token"),
        ("\ufeffORDER_ID", "order_id"),
        ("reference  origin.", "reference_origin"),
        ("Métadonnées", "métadonnées"),
        ("", ""),
    ],
)
def test_normalise_header(header: str, expected: str) -> None:
    assert normalise_header(header) == expected


def test_extra_columns_keep_original_headers_in_order(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(
        " Notes ,Order ID,,Payment Source Token,Notes,Amount (€)\nn1,A,x,tok,n2,12\n",
        encoding="utf-8",
    )
    f = open_input(path)
    assert f.headers == ["Notes", "Order ID", "", "Payment Source Token", "Notes", "Amount (€)"]
    assert f.extra_headers == ["Notes", "(column 3)", "Notes (2)", "Amount (€)"]
    [row] = f.rows()
    assert list(row.extra.items()) == [
        ("Notes", "n1"),
        ("(column 3)", "x"),
        ("Notes (2)", "n2"),
        ("Amount (€)", "12"),
    ]


def test_explicit_mapping(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("Order Ref,Order ID,Card Token\nR1,internal-7,tok\n", encoding="utf-8")
    mapping = parse_column_mapping(['order_id="Order Ref"', "payment_source_token=card token"])
    f = open_input(path, columns=mapping)
    [row] = f.rows()
    assert (row.order_id, row.payment_source_token) == ("R1", "tok")
    # The mapping decides: a column merely named like the field is carried as extra.
    assert row.extra == {"Order ID": "internal-7"}


def test_parse_column_mapping() -> None:
    assert parse_column_mapping(["order_id=Order Ref", "Reference = 'Our ref'"]) == {
        "order_id": "Order Ref",
        "reference": "Our ref",
    }
    assert parse_column_mapping([]) == {}


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["order_id"], "expected COLUMN=HEADER"),
        (["=Order"], "expected COLUMN=HEADER"),
        (["order_id="], "expected COLUMN=HEADER"),
        (["amount=Amount"], "unknown column 'amount'"),
        (["order_id=A", "order-id=B"], "order_id is mapped more than once"),
    ],
)
def test_parse_column_mapping_refuses(items: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_column_mapping(items)
