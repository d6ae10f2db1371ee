"""Key-field values are refused, never cleaned: each class names the character and where."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from batch.inputs import (
    COMMA_IN_VALUE,
    CONTROL_CHARACTER,
    EXCEL_APOSTROPHE,
    FULLWIDTH_CHARACTER,
    INVISIBLE_CHARACTER,
    MASKED_TOKEN,
    SPACE_IN_VALUE,
    open_input,
)
from batch.rows import InputRow

HEADER = ["order_id", "payment_source_token", "reference"]


def read_row(tmp_path: Path, order_id: str, token: str, reference: str = "") -> InputRow:
    path = tmp_path / "orders.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([HEADER, [order_id, token, reference]])
    [row] = open_input(path).rows()
    return row


# (order_id, token, code, exact detail): every class of refused key value.
REFUSED = {
    "zero width space": (
        "ORD1",
        "tok_abc123def\u200bxyz",
        INVISIBLE_CHARACTER,
        "payment_source_token has an invisible character U+200B ZERO WIDTH SPACE at position 14",
    ),
    "word joiner": (
        "ORD\u20601",
        "tok_1",
        INVISIBLE_CHARACTER,
        "order_id has an invisible character U+2060 WORD JOINER at position 4",
    ),
    "byte order mark": (
        "ORD1",
        "\ufefftok_1",
        INVISIBLE_CHARACTER,
        "payment_source_token has an invisible character U+FEFF ZERO WIDTH NO-BREAK SPACE"
        " at position 1",
    ),
    "soft hyphen": (
        "ORD1",
        "tok\u00ad_1",
        INVISIBLE_CHARACTER,
        "payment_source_token has an invisible character U+00AD SOFT HYPHEN at position 4",
    ),
    "variation selector": (
        "ORD1",
        "tok_1\ufe0f",
        INVISIBLE_CHARACTER,
        "payment_source_token has an invisible character U+FE0F VARIATION SELECTOR-16"
        " at position 6",
    ),
    "newline inside a token": (
        "ORD1",
        "tok_\n1",
        CONTROL_CHARACTER,
        "payment_source_token has a control character U+000A LINE FEED (new line) at position 5",
    ),
    "tab inside an order id": (
        "ORD\t1",
        "tok_1",
        CONTROL_CHARACTER,
        "order_id has a control character U+0009 CHARACTER TABULATION (tab) at position 4",
    ),
    "no-break space inside": (
        "ORD\u00a01",
        "tok_1",
        SPACE_IN_VALUE,
        "order_id has a space character U+00A0 NO-BREAK SPACE at position 4",
    ),
    "ideographic space inside": (
        "ORD1",
        "tok\u3000_1",
        SPACE_IN_VALUE,
        "payment_source_token has a space character U+3000 IDEOGRAPHIC SPACE at position 4",
    ),
    "space inside a token": (
        "ORD1",
        "tok 1",
        SPACE_IN_VALUE,
        "payment_source_token has a space U+0020 SPACE at position 4",
    ),
    "fullwidth letters": (
        "ORD1",
        "ｔｏｋ_1",
        FULLWIDTH_CHARACTER,
        "payment_source_token has a fullwidth or compatibility character"
        " U+FF54 FULLWIDTH LATIN SMALL LETTER T at position 1 (retype it in plain half-width)",
    ),
    "fullwidth digit in an order id": (
        "ORD１",
        "tok_1",
        FULLWIDTH_CHARACTER,
        "order_id has a fullwidth or compatibility character U+FF11 FULLWIDTH DIGIT ONE"
        " at position 4 (retype it in plain half-width)",
    ),
    "leading apostrophe": (
        "'00123",
        "tok_1",
        EXCEL_APOSTROPHE,
        "order_id starts with an apostrophe, which looks like Excel's text marker;"
        " remove it and format the column as Text",
    ),
    "comma in an order id": (
        "ORD1,ORD2",
        "tok_1",
        COMMA_IN_VALUE,
        "order_id has a comma at position 5; an order id or number never holds one"
        " (two values in one cell?)",
    ),
    "masked with stars": ("ORD1", "****1234", MASKED_TOKEN, None),
    "masked with bullets": ("ORD1", "••••1234", MASKED_TOKEN, None),
    "masked with crosses": ("ORD1", "XXXXXXXXXXXX1234", MASKED_TOKEN, None),
    "short token masked whole": ("ORD1", "****", MASKED_TOKEN, None),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_key_values(tmp_path: Path, case: str) -> None:
    order_id, token, code, detail = REFUSED[case]
    row = read_row(tmp_path, order_id, token)
    assert row.problem is not None
    assert row.problem.code == code
    if detail is not None:
        assert row.problem.detail == detail
    assert row.status_if_refused == "invalid"


def test_masked_token_message_says_where_it_came_from(tmp_path: Path) -> None:
    row = read_row(tmp_path, "ORD1", "****1234")
    assert row.problem is not None
    assert row.problem.detail == (
        "payment_source_token looks like a masked token copied from a report (only its last"
        " characters are shown); use the original file's token"
    )


@pytest.mark.parametrize(
    ("order_id", "token"),
    [
        ("ORD1", "tok_1"),
        ("  ORD1 ", "\u00a0tok_1\u3000"),  # surrounding whitespace is trimmed, not refused
        ("Ordre-é", "tok_ü"),  # letters outside ASCII that normalisation keeps
        ("ORD1", "tok_xxxx1234"),  # crosses after a prefix are part of a real token
        ("ORD1", "tok-1,2"),  # a comma is refused only in an order id or number
    ],
)
def test_values_kept_as_typed(tmp_path: Path, order_id: str, token: str) -> None:
    row = read_row(tmp_path, order_id, token)
    assert row.problem is None
    assert (row.order_id, row.payment_source_token) == (order_id.strip(), token.strip())


def test_free_text_keeps_newlines_tabs_and_unicode(tmp_path: Path) -> None:
    reference = "line one\nline\ttwo \u200b ｆｕｌｌ"
    row = read_row(tmp_path, "ORD1", "tok_1", reference)
    assert (row.problem, row.reference) == (None, reference)


def test_free_text_refuses_other_control_characters(tmp_path: Path) -> None:
    row = read_row(tmp_path, "ORD1", "tok_1", "ding\x07")
    assert row.problem is not None
    assert (row.problem.code, row.problem.detail) == (
        CONTROL_CHARACTER,
        "reference has a control character U+0007 at position 5",
    )


def test_a_combining_sequence_is_refused(tmp_path: Path) -> None:
    row = read_row(tmp_path, "ORD1", "tok_e\u0301")  # é typed as e + combining acute
    assert row.problem is not None
    assert row.problem.code == FULLWIDTH_CHARACTER
    assert "position 5" in row.problem.detail
