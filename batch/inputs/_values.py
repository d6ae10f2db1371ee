"""Value checks that refuse and never clean: key fields must be exactly what was typed.

A key field (order_id, order_number, payment_source_token) goes to the API as it is, so a
character nobody can see, a fullwidth form, a masked token or Excel's apostrophe would
send a value the person did not type. Each refusal names the character and its position;
positions count characters from 1 in the value as trimmed of surrounding whitespace.
"""

from __future__ import annotations

import re
import unicodedata

from batch.rows import RowProblem

CONTROL_CHARACTER = "CONTROL_CHARACTER"
INVISIBLE_CHARACTER = "INVISIBLE_CHARACTER"
FULLWIDTH_CHARACTER = "FULLWIDTH_CHARACTER"
SPACE_IN_VALUE = "SPACE_IN_VALUE"
COMMA_IN_VALUE = "COMMA_IN_VALUE"
EXCEL_APOSTROPHE = "EXCEL_APOSTROPHE"
MASKED_TOKEN = "MASKED_TOKEN"

# The common case, in one match: printable ASCII with nothing to refuse. A key has no
# comma and a token no `*`; neither starts with an apostrophe, nor a token with 4 crosses.
KEY_PLAIN = re.compile(r"[!-&(-+\--~][!-+\--~]*")
TOKEN_PLAIN = re.compile(r"(?![xX]{4})[!-&()+-~][!-)+-~]*")
# ASCII characters a key field never holds: controls, DEL, and the space (inside a value;
# the edges are trimmed before this).
_ASCII_BAD = re.compile(r"[\x00-\x20\x7f]")
_ASCII_BAD_WITH_COMMA = re.compile(r"[\x00-\x20\x7f,]")
# Free text keeps newline, carriage return and tab; every other control is refused.
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# A token masked the way reports and card receipts show it: a run of mask characters
# before at most the last 4 characters.
_MASK_RUN = re.compile(r"[*•●∙·]+[^*•●∙·]{0,4}\Z|\A(?:[xX]{4,}-?)+[^xX]{0,4}\Z")
# Invisible code points outside Cc/Cf/Zs: variation selectors, fillers, joiners.
_DEFAULT_IGNORABLE = frozenset(
    (0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180B, 0x180C, 0x180D, 0x180F, 0x3164, 0xFFA0)
).union(range(0xFE00, 0xFE10), range(0xE0100, 0xE01F0))
_CONTROL_NAMES = {
    0x09: "CHARACTER TABULATION (tab)",
    0x0A: "LINE FEED (new line)",
    0x0D: "CARRIAGE RETURN",
    0x1A: "SUBSTITUTE",
    0x7F: "DELETE",
}


def char_name(ch: str) -> str:
    """`U+200B ZERO WIDTH SPACE`; controls have no Unicode name, the common ones get theirs."""
    code = ord(ch)
    name = unicodedata.name(ch, "") or _CONTROL_NAMES.get(code, "")
    return f"U+{code:04X} {name}" if name else f"U+{code:04X}"


def _at(column: str, what: str, value: str, index: int) -> str:
    return f"{column} has {what} {char_name(value[index])} at position {index + 1}"


def _unicode_problem(column: str, value: str) -> RowProblem | None:
    for index, ch in enumerate(value):
        category = unicodedata.category(ch)
        if category == "Cc":
            detail = _at(column, "a control character", value, index)
            return RowProblem(CONTROL_CHARACTER, detail)
        if category in ("Cf", "Zl", "Zp", "Co", "Cn") or ord(ch) in _DEFAULT_IGNORABLE:
            detail = _at(column, "an invisible character", value, index)
            return RowProblem(INVISIBLE_CHARACTER, detail)
        if category == "Zs":
            what = "a space" if ch == " " else "a space character"
            return RowProblem(SPACE_IN_VALUE, _at(column, what, value, index))
        if unicodedata.normalize("NFKC", ch) != ch:
            detail = _at(column, "a fullwidth or compatibility character", value, index)
            return RowProblem(FULLWIDTH_CHARACTER, detail + " (retype it in plain half-width)")
    normalised = unicodedata.normalize("NFKC", value)
    if normalised != value:
        # Only a combining sequence changes as a whole; name where it starts differing.
        pairs = enumerate(zip(value, normalised, strict=False))
        index = next((i for i, (a, b) in pairs if a != b), len(value) - 1)
        detail = _at(column, "a combining sequence starting with", value, index)
        return RowProblem(FULLWIDTH_CHARACTER, detail + " that Unicode normalisation changes")
    return None


def key_problem(column: str, value: str, *, comma: bool) -> RowProblem | None:
    """Why a non-blank, trimmed key value cannot be sent as typed, or None.

    `comma`: refuse a comma too (order ids and numbers go into comma-separated filters).
    The position named in the detail is 1-based, in characters of the trimmed value.
    """
    if value[0] == "'":
        detail = (
            f"{column} starts with an apostrophe, which looks like Excel's text marker;"
            " remove it and format the column as Text"
        )
        return RowProblem(EXCEL_APOSTROPHE, detail)
    if value.isascii():
        found = (_ASCII_BAD_WITH_COMMA if comma else _ASCII_BAD).search(value)
        if found is None:
            return None
        index = found.start()
        ch = value[index]
        if ch == ",":
            detail = (
                f"{column} has a comma at position {index + 1}; an order id or number never"
                " holds one (two values in one cell?)"
            )
            return RowProblem(COMMA_IN_VALUE, detail)
        if ch == " ":
            return RowProblem(SPACE_IN_VALUE, _at(column, "a space", value, index))
        return RowProblem(CONTROL_CHARACTER, _at(column, "a control character", value, index))
    problem = _unicode_problem(column, value)
    if problem is None and comma and "," in value:
        index = value.index(",")
        detail = f"{column} has a comma at position {index + 1}"
        return RowProblem(COMMA_IN_VALUE, detail)
    return problem


def masked_token_problem(column: str, value: str) -> RowProblem | None:
    """A token shown masked (`****1234`, `••••1234`, `XXXX1234`) is refused, never sent."""
    if _MASK_RUN.search(value) is None:
        return None
    detail = (
        f"{column} looks like a masked token copied from a report (only its last characters"
        " are shown); use the original file's token"
    )
    return RowProblem(MASKED_TOKEN, detail)


def text_problem(column: str, value: str) -> RowProblem | None:
    """Free text keeps what was typed, but a control other than newline or tab is refused."""
    found = _TEXT_CONTROL.search(value)
    if found is None:
        return None
    return RowProblem(CONTROL_CHARACTER, _at(column, "a control character", value, found.start()))
