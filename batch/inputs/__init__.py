"""Reading the orders file: CSV/TSV/TXT or a workbook (xlsx, xlsm, xlsb, xls, ods), by
content, streamed and checked per row.

    open_input(path, sheet=, columns=, match="id"|"number") -> InputFile   raises InputFileError
    InputFile.rows() -> Iterator[InputRow]              restarts from the top on every call
    InputFile.header_row, InputFile.sheet_name          where the header was found
    parse_column_mapping(["order_id=Order Ref"])        raises UsageError

Every cell is text exactly as typed ("NA", "0012", "=1+1" stay), trimmed of surrounding
whitespace; a whole number in a workbook reads as "12345". Row problems (blank ids, card
numbers, invisible characters, masked tokens, bad JSON, over-long values, repeated orders)
go into `InputRow.problem`, never an exception.
"""

from batch.inputs._checks import (
    BLANK_ORDER_ID,
    BLANK_ORDER_NUMBER,
    BLANK_TOKEN,
    CARD_NUMBER_TOKEN,
    INVALID_JSON,
    MAX_JSON_BYTES,
    MAX_TEXT_CHARS,
    TOO_LONG,
    TOO_MANY_CELLS,
)
from batch.inputs._file import InputFile, open_input
from batch.inputs._find import HEADER_SEARCH_ROWS
from batch.inputs._headers import Match, normalise_header, parse_column_mapping
from batch.inputs._sheets import ERROR_CELL, FORMULA_WITHOUT_VALUE, NUMERIC_KEY
from batch.inputs._values import (
    COMMA_IN_VALUE,
    CONTROL_CHARACTER,
    EXCEL_APOSTROPHE,
    FULLWIDTH_CHARACTER,
    INVISIBLE_CHARACTER,
    MASKED_TOKEN,
    SPACE_IN_VALUE,
)

__all__ = [
    "BLANK_ORDER_ID",
    "BLANK_ORDER_NUMBER",
    "BLANK_TOKEN",
    "CARD_NUMBER_TOKEN",
    "COMMA_IN_VALUE",
    "CONTROL_CHARACTER",
    "ERROR_CELL",
    "EXCEL_APOSTROPHE",
    "FORMULA_WITHOUT_VALUE",
    "FULLWIDTH_CHARACTER",
    "HEADER_SEARCH_ROWS",
    "INVALID_JSON",
    "INVISIBLE_CHARACTER",
    "MASKED_TOKEN",
    "MAX_JSON_BYTES",
    "MAX_TEXT_CHARS",
    "NUMERIC_KEY",
    "SPACE_IN_VALUE",
    "TOO_LONG",
    "TOO_MANY_CELLS",
    "InputFile",
    "Match",
    "normalise_header",
    "open_input",
    "parse_column_mapping",
]
