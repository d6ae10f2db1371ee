"""The exact one-line messages of file-level input problems (`InputFileError`)."""

from __future__ import annotations

NOT_FOUND = "{name}: file not found"
PERMISSION_DENIED = "{name}: permission denied"
IS_DIRECTORY = "{name}: is a directory, not a file"
UNREADABLE = "{name}: cannot be read ({reason})"
EMPTY = "{name}: the file is empty (no header row)"
BINARY = (
    "{name}: not a text file or a workbook (it contains NUL bytes; UTF-16 needs a byte-order mark)"
)
NOT_TEXT = "{name}: not text in UTF-8, UTF-16 or Windows-1252, and not a workbook"
# What a file really is, when it is not a spreadsheet or CSV.
NOT_A_SHEET = "{name}: {what}, not a spreadsheet or CSV file; export the orders as .xlsx or CSV"
HTML = (
    "{name}: an HTML web page, not a spreadsheet (web exports are often saved as .xls);"
    " open it in Excel and save it as .xlsx or CSV"
)
WEB_ARCHIVE = (
    "{name}: a saved web page (MHTML), not a spreadsheet;"
    " open it in Excel and save it as .xlsx or CSV"
)
SPREADSHEET_ML = (
    "{name}: an Excel 2003 XML spreadsheet (SpreadsheetML), which paybatch does not read;"
    " open it in Excel and save it as .xlsx or CSV"
)
XML = "{name}: an XML document, not a spreadsheet or CSV file"
ZIP_NOT_WORKBOOK = "{name}: a zip archive that holds no workbook (neither Excel nor OpenDocument)"
DAMAGED_ZIP = (
    "{name}: a damaged zip archive, so not a readable workbook (was it copied completely?)"
)
CORRUPT_WORKBOOK = (
    "{name}: cannot be read as an {format} workbook (damaged or password-protected);"
    " open it in Excel and save it again"
)
NO_SHEETS = "{name}: the workbook has no worksheets"
NO_SUCH_SHEET = "{name}: no sheet named {sheet!r} (sheets found: {found})"
SHEET_ON_TEXT = "{name}: a sheet was chosen ({sheet!r}) but the file is CSV text, which has none"
SEVERAL_SHEETS = (
    "{name}: sheets {sheets} all have the required columns; choose one with --sheet{active}"
)
NO_SHEET_QUALIFIES = (
    "{name}: no sheet has the required column(s) {missing} in its first {rows} rows"
    " (sheets and their first rows: {sheets}){hint}"
)
MISSING_COLUMNS = "{name}: missing required column(s): {missing} (found: {found}){hint}"
OWN_REPORT = (
    "{name}: this is a paybatch {what} (its columns start {columns}), not an orders file;"
    " reports hold masked tokens, so fix the original file and run that again"
)
UNMATCHED_QUOTE = (
    "{name}: row {row}: the quoted {column} value runs over {lines} following line(s) that"
    ' look like rows; it likely starts with an unmatched quote ("); fix it and run again'
)
DUPLICATE_COLUMN = "{name}: column {column} appears more than once (headers: {found})"
MAPPED_NOT_FOUND = "{name}: column {header!r} (given for {column}) not found (found: {found})"
MALFORMED_CSV = "{name}: row {row}: malformed CSV ({reason})"
CHANGED = "{name}: the file changed while it was being read; run again"
