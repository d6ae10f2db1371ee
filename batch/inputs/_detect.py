"""What a file is, by its bytes: a workbook (which format) or text (which encoding), and its
SHA-256. Whatever the extension says; a file of another kind is named for what it is."""

from __future__ import annotations

import codecs
import enum
import hashlib
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from batch.errors import InputFileError
from batch.inputs import _messages as msg

ZIP_MAGIC = b"PK\x03\x04"
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Excel 97-2003 .xls (and other old Office files)
UTF8_BOM = codecs.BOM_UTF8
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
READ_CHUNK = 1 << 20


class FileKind(enum.StrEnum):
    """How the file's content is read, whatever its extension says."""

    TEXT = "text"
    XLSX = "xlsx"  # and .xlsm: the same parts
    XLSB = "xlsb"
    XLS = "xls"  # Excel 97-2003
    ODS = "ods"

    @property
    def label(self) -> str:
        """How a person calls the format."""
        return _LABELS[self]


_LABELS = {
    FileKind.TEXT: "text",
    FileKind.XLSX: "XLSX",
    FileKind.XLSB: "Excel binary (.xlsb)",
    FileKind.XLS: "Excel 97-2003 (.xls)",
    FileKind.ODS: "OpenDocument (.ods)",
}
# Leading bytes of files people send instead of a spreadsheet.
_OTHER_MAGIC = (
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
)
_OPENDOCUMENT = "application/vnd.oasis.opendocument."
_OPENDOCUMENT_KINDS = {
    "text": "an OpenDocument text document (.odt)",
    "presentation": "an OpenDocument presentation (.odp)",
    "graphics": "an OpenDocument drawing (.odg)",
}


@dataclass(frozen=True, slots=True)
class Detected:
    """The result of one streaming pass over the file's bytes."""

    kind: FileKind
    encoding: str | None  # a Python codec name for TEXT, None for a workbook
    sha256: str
    size: int
    mtime_ns: int
    eof_marker: bool = False  # TEXT ending in DOS's end-of-file character (\x1a)


def stat_key(path: Path) -> tuple[int, int]:
    """Size and modification time, to notice a file that changes between reads."""
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def open_bytes(path: Path) -> BinaryIO:
    """Open for reading, turning OS errors into one-line `InputFileError`s."""
    name = path.name
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise InputFileError(msg.NOT_FOUND.format(name=name)) from None
    except PermissionError:
        raise InputFileError(msg.PERMISSION_DENIED.format(name=name)) from None
    except IsADirectoryError:
        raise InputFileError(msg.IS_DIRECTORY.format(name=name)) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputFileError(msg.UNREADABLE.format(name=name, reason=reason)) from None


def _chunks(f: BinaryIO, first: bytes) -> Iterator[bytes]:
    yield first
    while chunk := f.read(READ_CHUNK):
        yield chunk


def _text_encoding(head: bytes) -> str:
    if head.startswith(UTF8_BOM):
        return "utf-8-sig"
    if head.startswith(UTF16_BOMS):
        return "utf-16"  # the codec reads the BOM and picks the byte order
    return "utf-8"


def _zip_kind(path: Path) -> FileKind:
    """XLSX/XLSM, XLSB or ODS by the parts inside; anything else is named and refused."""
    name = path.name
    try:
        with zipfile.ZipFile(path) as z:
            parts = set(z.namelist())
            mimetype = (
                z.read("mimetype")[:100].decode("ascii", "replace") if "mimetype" in parts else ""
            )
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError):
        raise InputFileError(msg.DAMAGED_ZIP.format(name=name)) from None
    if "xl/workbook.xml" in parts:
        return FileKind.XLSX
    if "xl/workbook.bin" in parts:
        return FileKind.XLSB
    if mimetype.startswith(_OPENDOCUMENT + "spreadsheet"):
        return FileKind.ODS
    if mimetype.startswith(_OPENDOCUMENT):
        what = _OPENDOCUMENT_KINDS.get(mimetype.removeprefix(_OPENDOCUMENT).split("-")[0])
        raise InputFileError(msg.NOT_A_SHEET.format(name=name, what=what or "an OpenDocument file"))
    if "word/document.xml" in parts:
        raise InputFileError(msg.NOT_A_SHEET.format(name=name, what="a Word document"))
    if any(part.startswith("ppt/") for part in parts):
        raise InputFileError(msg.NOT_A_SHEET.format(name=name, what="a PowerPoint presentation"))
    raise InputFileError(msg.ZIP_NOT_WORKBOOK.format(name=name))


def _text_disguise(head: str) -> str | None:
    """The message for markup saved with a spreadsheet or CSV name, else None."""
    start = head.lstrip("\ufeff \t\r\n")[:4096].casefold()
    if start.startswith("mime-version:"):
        return msg.WEB_ARCHIVE
    if start.startswith("<?xml"):
        if "urn:schemas-microsoft-com:office:spreadsheet" in start or "excel.sheet" in start:
            return msg.SPREADSHEET_ML
        return msg.HTML if "<html" in start else msg.XML
    if start.startswith(("<!doctype html", "<html", "<table", "<head", "<body", "<meta")):
        return msg.HTML
    return None


def detect(path: Path) -> Detected:
    """Hash the file and decide how to read it; raise `InputFileError` if it is unusable."""
    name = path.name
    with open_bytes(path) as f:
        st = os.fstat(f.fileno())
        head = f.read(READ_CHUNK)
        digest = hashlib.sha256()
        for magic, what in _OTHER_MAGIC:
            if head.startswith(magic):
                raise InputFileError(msg.NOT_A_SHEET.format(name=name, what=what))
        if head.startswith((OLE2_MAGIC, ZIP_MAGIC)):
            for chunk in _chunks(f, head):
                digest.update(chunk)
            kind = FileKind.XLS if head.startswith(OLE2_MAGIC) else _zip_kind(path)
            return Detected(kind, None, digest.hexdigest(), st.st_size, st.st_mtime_ns)
        encoding = _text_encoding(head)
        disguise = _text_disguise(head[:8192].decode(encoding, "replace"))
        if disguise is not None:
            raise InputFileError(disguise.format(name=name))
        decoder = codecs.getincrementaldecoder(encoding)()
        has_nul, decodes, last = False, True, ""
        for chunk in _chunks(f, head):
            digest.update(chunk)
            last_byte = chunk[-1:]
            if encoding != "utf-16" and b"\x00" in chunk:
                has_nul = True
            if decodes:
                try:
                    text = decoder.decode(chunk)
                except UnicodeDecodeError:
                    decodes = False
                    continue
                last = text[-1:] or last
                if encoding == "utf-16" and "\x00" in text:
                    has_nul = True
        if decodes:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                decodes = False
    if has_nul:
        raise InputFileError(msg.BINARY.format(name=name))
    if not decodes:
        # Only a file that is not valid UTF-8 is taken as legacy Windows "CSV (Comma delimited)".
        if encoding != "utf-8" or not _decodes_as(path, "cp1252"):
            raise InputFileError(msg.NOT_TEXT.format(name=name))
        encoding = "cp1252"
    # \x1a is one byte in UTF-8 and Windows-1252; in UTF-16 it is the last decoded character.
    eof_marker = last == "\x1a" if encoding == "utf-16" else last_byte == b"\x1a"
    return Detected(
        FileKind.TEXT,
        encoding,
        digest.hexdigest(),
        st.st_size,
        st.st_mtime_ns,
        eof_marker=eof_marker,
    )


def _decodes_as(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    with open_bytes(path) as f:
        try:
            while chunk := f.read(READ_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True
