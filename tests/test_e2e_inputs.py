"""End to end: every class of refused input value is never sent (the sandbox counts POSTs).

Each case is a file with one good row (ORD00001) and one refused row (ORD00002, or an id
spelled with the bad character). The real CLI runs against the sandbox on 127.0.0.1; the
server must hold exactly one payment, the good row's, and the report must explain the other.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest
import xlsxwriter
from click.testing import CliRunner
from e2e import post_count, read_report, run_args

from batch.cli import main
from batch.sandbox import SandboxServer

GOOD = ("ORD00001", "tok_good_row_0001")
HEADER = ["order_id", "payment_source_token", "reference"]

# case: (order_id, token, reference, expected error_code); written as CSV.
TEXT_CASES: dict[str, tuple[str, str, str, str]] = {
    "zero width space in token": ("ORD00002", "tok_bad\u200b0002", "", "INVISIBLE_CHARACTER"),
    "word joiner in order id": ("ORD\u206000002", "tok_bad_0002", "", "INVISIBLE_CHARACTER"),
    "byte order mark in token": ("ORD00002", "\ufefftok_bad_0002", "", "INVISIBLE_CHARACTER"),
    "soft hyphen in token": ("ORD00002", "tok_bad\u00ad_0002", "", "INVISIBLE_CHARACTER"),
    "newline inside token": ("ORD00002", "tok_bad\n0002", "", "CONTROL_CHARACTER"),
    "tab inside order id": ("ORD\t00002", "tok_bad_0002", "", "CONTROL_CHARACTER"),
    "no-break space in order id": ("ORD\u00a000002", "tok_bad_0002", "", "SPACE_IN_VALUE"),
    "space in token": ("ORD00002", "tok bad 0002", "", "SPACE_IN_VALUE"),
    "fullwidth token": ("ORD00002", "ｔｏｋ＿ｂａｄ＿０００２", "", "FULLWIDTH_CHARACTER"),
    "fullwidth order id": ("ＯＲＤ00002", "tok_bad_0002", "", "FULLWIDTH_CHARACTER"),
    "leading apostrophe": ("'00002", "tok_bad_0002", "", "EXCEL_APOSTROPHE"),
    "comma in order id": ("ORD00002,ORD00003", "tok_bad_0002", "", "COMMA_IN_VALUE"),
    "masked with stars": ("ORD00002", "****0002", "", "MASKED_TOKEN"),
    "masked with bullets": ("ORD00002", "••••0002", "", "MASKED_TOKEN"),
    "masked with crosses": ("ORD00002", "XXXXXXXXXXXX0002", "", "MASKED_TOKEN"),
    "card number as token": ("ORD00002", "4111 1111 1111 1111", "", "CARD_NUMBER_TOKEN"),
    "control character in reference": ("ORD00002", "tok_bad_0002", "INV\x072", "CONTROL_CHARACTER"),
}


def _csv(case: str) -> Callable[[Path], Path]:
    def write(path: Path) -> Path:
        order_id, token, reference, _ = TEXT_CASES[case]
        path = path.with_suffix(".csv")
        with path.open("w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows([HEADER, [*GOOD, ""], [order_id, token, reference]])
        return path

    return write


def _xlsx_numbers(path: Path) -> Path:
    path = path.with_suffix(".xlsx")
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("Orders")
    sheet.write_row(0, 0, HEADER)
    sheet.write_row(1, 0, [*GOOD])
    sheet.write_string(2, 0, "ORD00002")
    sheet.write_number(2, 1, 1234567890123456789012)  # 22 digits typed, 15 kept by Excel
    sheet.write_number(3, 0, 2.5)  # an order id with a fraction
    sheet.write_string(3, 1, "tok_bad_0003")
    book.close()
    return path


def _xlsx_formula(path: Path) -> Path:
    path = path.with_suffix(".xlsx")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(HEADER)
    sheet.append([*GOOD])
    sheet.append(["ORD00002", '="tok_bad_"&"0002"'])  # no saved value: openpyxl never computes
    book.save(path)
    return path


def _repeated_header(path: Path) -> Path:
    path = path.with_suffix(".csv")
    path.write_text(
        f"{','.join(HEADER)}\n{GOOD[0]},{GOOD[1]},\n{','.join(HEADER)}\n", encoding="utf-8"
    )
    return path


# case: (writer, {spreadsheet row: (status, error_code)} of the refused rows, exit code)
CASES: dict[str, tuple[Callable[[Path], Path], dict[int, tuple[str, str]], int]] = {
    **{case: (_csv(case), {3: ("invalid", TEXT_CASES[case][3])}, 1) for case in TEXT_CASES},
    "numbers Excel may have changed": (
        _xlsx_numbers,
        {3: ("invalid", "NUMERIC_KEY"), 4: ("invalid", "NUMERIC_KEY")},
        1,
    ),
    "formula without saved value": (
        _xlsx_formula,
        {3: ("invalid", "FORMULA_WITHOUT_VALUE")},
        1,
    ),
    "repeated header row": (_repeated_header, {3: ("skipped", "REPEATED_HEADER")}, 0),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_values_are_never_sent(sandbox: SandboxServer, tmp_path: Path, case: str) -> None:
    write, refused, exit_code = CASES[case]
    source = write(tmp_path / "orders")
    report = tmp_path / "report.csv"
    args = run_args(source, tmp_path / "state.sqlite", report)
    result = CliRunner().invoke(main, args, env=sandbox.env(), catch_exceptions=False)
    assert result.exit_code == exit_code, result.output

    # The server saw one create, for the good row, with its token: nothing else was sent.
    payments = sandbox.payments_by_order()
    assert set(payments) == {GOOD[0]}
    assert [p["token"] for p in payments[GOOD[0]]] == [GOOD[1]]
    assert post_count(sandbox) == 1

    lines = {int(line["row"]): line for line in read_report(report)}
    assert lines[2]["status"] == "created"
    assert {row: (lines[row]["status"], lines[row]["error_code"]) for row in refused} == refused
    assert set(lines) == {2, *refused}  # every data line is accounted for
