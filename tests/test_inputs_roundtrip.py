"""Arbitrary text written in every supported flavour reads back identically (trimmed)."""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest
import xlsxwriter
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from batch.inputs import open_input

HEADER = ["Order ID", "Payment Source Token", "Reference", "Metadata", "Notes"]
TRICKY = ["NA", "N/A", "null", "NULL", "nan", "0012", "007", "=1+1", "+1", "-0", "1e5", "TRUE",
          '"', '""', "a,b;c\td|e", "line\nbreak", "cr\rlf\r\n", "\ufeff", " \u00a0pad\u00a0 ",
          "€", "é", "日本", "#N/A", "'0012"]  # fmt: skip
SETTINGS = settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

Record = tuple[str, str, str, str, str]


def texts(alphabet: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(TRICKY), st.text(alphabet, max_size=30))


def records(alphabet: st.SearchStrategy[str]) -> st.SearchStrategy[list[Record]]:
    cell = texts(alphabet)
    record = st.tuples(cell, cell, cell, cell, cell)
    return st.lists(record, min_size=1, max_size=5)


# Key fields refuse invisible, control and fullwidth characters, spaces and commas: only
# free text (reference, metadata, other columns) carries arbitrary text.
_KEY_SAFE = re.compile(r"[^0-9A-Za-z_.:/-]")
# Free text refuses control characters other than newline, carriage return and tab.
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def as_rows(drawn: list[Record]) -> list[list[str]]:
    # order_id/token made non-blank and unique so every record stays a valid row.
    return [
        [
            f"{i}{_KEY_SAFE.sub('', a)}",
            f"t{_KEY_SAFE.sub('', b)}",
            _TEXT_CONTROL.sub("", c),
            json.dumps({"k": d}, ensure_ascii=False),
            e,
        ]
        for i, (a, b, c, d, e) in enumerate(drawn)
    ]


def check_round_trip(path: Path, rows: list[list[str]]) -> None:
    got = list(open_input(path).rows())
    assert [r.problem for r in got] == [None] * len(rows)
    assert [r.row for r in got] == list(range(2, len(rows) + 2))
    for row, (order_id, token, reference, metadata, notes) in zip(got, rows, strict=True):
        assert row.order_id == order_id.strip()
        assert row.payment_source_token == token.strip()
        assert row.reference == (reference.strip() or None)
        assert row.metadata == json.loads(metadata)
        assert row.extra == {"Notes": notes.strip()}


def csv_bytes(
    rows: list[list[str]], delimiter: str, newline: str, encoding: str, quoting: Quoting
) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator=newline, quoting=quoting)
    writer.writerow(HEADER)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


Quoting = Literal[0, 1, 2, 3]
MINIMAL: Quoting = csv.QUOTE_MINIMAL
ALL: Quoting = csv.QUOTE_ALL
FLAVOURS: dict[str, tuple[str, str, str, Quoting, str]] = {
    # name: (delimiter, line ending, encoding, quoting, file name). Python's writer quotes
    # only its own line terminator, so CR/LF-only flavours quote every cell, as
    # LibreOffice's "quote all text cells" does.
    "google-sheets": (",", "\r\n", "utf-8", MINIMAL, "orders.csv"),
    "excel-utf8-bom-semicolon": (";", "\r\n", "utf-8-sig", MINIMAL, "orders.csv"),
    "excel-unicode-text": ("\t", "\r\n", "utf-16", MINIMAL, "orders.txt"),
    "utf16-be-pipe-cr": ("|", "\r", "utf-16-be", ALL, "orders.tsv"),
    "libreoffice-lf": (",", "\n", "utf-8", ALL, "orders.csv"),
}

unicode_text = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")


def with_dir(test: Callable[[Path], None]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        test(Path(tmp))


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
@SETTINGS
@given(drawn=records(unicode_text))
def test_text_flavours_round_trip(flavour: str, drawn: list[Record]) -> None:
    delimiter, newline, encoding, quoting, name = FLAVOURS[flavour]
    rows = as_rows(drawn)
    data = csv_bytes(rows, delimiter, newline, encoding, quoting)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data  # the BOM that Python's utf-16-be codec leaves out

    def run(tmp: Path) -> None:
        path = tmp / name
        path.write_bytes(data)
        check_round_trip(path, rows)

    with_dir(run)


@SETTINGS
@given(drawn=records(st.characters(codec="cp1252", exclude_characters="\x00")))
def test_cp1252_round_trip(drawn: list[Record]) -> None:
    rows = as_rows(drawn)
    try:
        data = csv_bytes(rows, ",", "\r\n", "cp1252", MINIMAL)
    except UnicodeEncodeError:
        assume(False)  # a TRICKY sample outside Windows-1252
        return
    try:
        as_utf8 = data.decode("utf-8")
    except UnicodeDecodeError:
        as_utf8 = None
    # Bytes that are valid UTF-8 are read as UTF-8 (the documented rule); only a file that
    # happens to mean something else in UTF-8 (like "Ã©") is ambiguous, so skip those.
    assume(as_utf8 is None or as_utf8 == data.decode("cp1252"))

    def run(tmp: Path) -> None:
        path = tmp / "orders.csv"
        path.write_bytes(data)
        check_round_trip(path, rows)

    with_dir(run)


# XML 1.0 cannot hold most C0 controls, and a bare CR is normalised by XML parsers.
xml_text = st.characters(
    exclude_categories=["Cs"],
    exclude_characters="".join(map(chr, [*range(0, 9), 11, 12, *range(14, 32), 13]))
    + "\ufffe\uffff",
)
_ESCAPE = re.compile(r"_x[0-9A-Fa-f]{4}_")  # OOXML's own escape syntax, not round-trippable


@SETTINGS
@given(drawn=records(xml_text))
def test_xlsx_round_trip(drawn: list[Record]) -> None:
    rows = as_rows(drawn)
    assume(not any(_ESCAPE.search(cell) or "\r" in cell for row in rows for cell in row))

    def run(tmp: Path) -> None:
        path = tmp / "orders.xlsx"
        wb = xlsxwriter.Workbook(str(path))
        ws = wb.add_worksheet()
        ws.write_row(0, 0, HEADER)
        for r, row in enumerate(rows, start=1):
            for c, value in enumerate(row):
                ws.write_string(r, c, value)
        wb.close()
        check_round_trip(path, rows)

    with_dir(run)
