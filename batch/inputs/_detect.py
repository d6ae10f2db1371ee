"""What a file is, by its bytes: XLSX or text (and which encoding), plus its SHA-256."""

from __future__ import annotations

import codecs
import enum
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from batch.errors import InputFileError
from batch.inputs import _messages as msg

ZIP_MAGIC = b"PK\x03\x04"
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Excel 97-2003 .xls
UTF8_BOM = codecs.BOM_UTF8
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
READ_CHUNK = 1 << 20


class FileKind(enum.StrEnum):
    """How the file's content is read, whatever its extension says."""

    TEXT = "text"
    XLSX = "xlsx"


@dataclass(frozen=True, slots=True)
class Detected:
    """The result of one streaming pass over the file's bytes."""

    kind: FileKind
    encoding: str | None  # a Python codec name for TEXT, None for XLSX
    sha256: str
    size: int
    mtime_ns: int


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


def detect(path: Path) -> Detected:
    """Hash the file and decide how to read it; raise `InputFileError` if it is unusable."""
    name = path.name
    with open_bytes(path) as f:
        st = os.fstat(f.fileno())
        head = f.read(READ_CHUNK)
        digest = hashlib.sha256()
        if head.startswith(OLE2_MAGIC):
            raise InputFileError(msg.OLD_XLS.format(name=name))
        if head.startswith(ZIP_MAGIC):
            for chunk in _chunks(f, head):
                digest.update(chunk)
            return Detected(FileKind.XLSX, None, digest.hexdigest(), st.st_size, st.st_mtime_ns)
        encoding = _text_encoding(head)
        decoder = codecs.getincrementaldecoder(encoding)()
        has_nul, decodes = False, True
        for chunk in _chunks(f, head):
            digest.update(chunk)
            if encoding != "utf-16" and b"\x00" in chunk:
                has_nul = True
            if decodes:
                try:
                    text = decoder.decode(chunk)
                except UnicodeDecodeError:
                    decodes = False
                    continue
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
    return Detected(FileKind.TEXT, encoding, digest.hexdigest(), st.st_size, st.st_mtime_ns)


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
