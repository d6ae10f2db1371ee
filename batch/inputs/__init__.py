"""Reading the orders file: CSV/TSV/TXT or XLSX, by content, streamed and checked per row.

    open_input(path, sheet=, columns=) -> InputFile     raises InputFileError (one line)
    InputFile.rows() -> Iterator[InputRow]              restarts from the top on every call
    parse_column_mapping(["order_id=Order Ref"])        raises UsageError

Every cell is text exactly as typed ("NA", "0012", "=1+1" stay), trimmed of surrounding
whitespace; an XLSX whole number reads as "12345". Row problems (blank ids, card numbers,
bad JSON, over-long values, repeated orders) go into `InputRow.problem`, never an exception.
"""

from batch.inputs._checks import (
    BLANK_ORDER_ID,
    BLANK_TOKEN,
    CARD_NUMBER_TOKEN,
    INVALID_JSON,
    MAX_JSON_BYTES,
    MAX_TEXT_CHARS,
    TOO_LONG,
    TOO_MANY_CELLS,
)
from batch.inputs._file import InputFile, open_input
from batch.inputs._headers import normalise_header, parse_column_mapping

__all__ = [
    "BLANK_ORDER_ID",
    "BLANK_TOKEN",
    "CARD_NUMBER_TOKEN",
    "INVALID_JSON",
    "MAX_JSON_BYTES",
    "MAX_TEXT_CHARS",
    "TOO_LONG",
    "TOO_MANY_CELLS",
    "InputFile",
    "normalise_header",
    "open_input",
    "parse_column_mapping",
]
