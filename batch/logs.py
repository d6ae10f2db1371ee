"""Logging for a run: JSON lines for cron, text for people, the run ID on every line, secrets never.

configure_logging() owns one handler, shared by the `batch`, `httpx` and `httpcore`
loggers. It leaves the root logger alone and can be called again (or undone with
reset_logging()) without stacking handlers. Records still propagate, so whatever sits
on the root logger (pytest's caplog, an embedding app) sees them, already redacted.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LOGGER = "batch"
# httpx logs every request at INFO; a run makes thousands of them.
QUIET_LOGGERS = ("httpx", "httpcore")
REDACTED = "***"

_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*")
# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "run_id",
}

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_handler: logging.Handler | None = None
_saved_levels: dict[str, int] = {}


def register_secret(value: str) -> None:
    """Redact `value` from every log line from now on (empty strings are ignored)."""
    if value:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Replace registered secrets and `Bearer <token>` with `***`."""
    with _secrets_lock:
        # Longest first, so a secret that contains another is hidden whole.
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _BEARER.sub(rf"\1 {REDACTED}", text)


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a caller passed with `extra=`."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


class RedactingFilter(logging.Filter):
    """Stamp the run ID and scrub secrets from the record itself.

    The record is rewritten in place (message, extras, traceback), so handlers further up
    the propagation chain receive the scrubbed version too.
    """

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = self.run_id
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format in a log call must not break the run
            message = f"{record.msg!r} (unformattable log arguments)"
        record.msg = redact(message)
        record.args = None
        for key, value in extras(record).items():
            if not isinstance(value, (bool, int, float)) and value is not None:
                text = value if isinstance(value, str) else repr(value)
                if redact(text) != text:
                    setattr(record, key, redact(text))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, run_id, msg, then any extras."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "run_id": getattr(record, "run_id", None),
            "msg": record.getMessage(),
        }
        # Extras never overwrite the fixed fields a log pipeline keys on.
        doc.update((k, v) for k, v in extras(record).items() if k not in doc)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = record.exc_text
        return json.dumps(doc, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`2025-01-31T23:59:59.123Z INFO  batch.runner [run-id] message key=value`."""

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{_timestamp(record)} {record.levelname:<7} {record.name} "
            f"[{getattr(record, 'run_id', '-')}] {record.getMessage()}"
        )
        fields = extras(record)
        if fields:
            line += " " + " ".join(f"{k}={_plain(v)}" for k, v in fields.items())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


def _plain(value: object) -> object:
    """Counts read as words in text logs: `(277 created, 1 not attempted)`, not a dict repr."""
    if isinstance(value, Mapping):
        words = ", ".join(f"{n} {str(key).replace('_', ' ')}" for key, n in value.items())
        return f"({words or 'none'})"
    return value


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is at emit time (CliRunner and pytest swap it)."""

    def __init__(self) -> None:
        # Skip StreamHandler.__init__, which would pin the current sys.stderr.
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or stream-like objects without a terminal
        return False


def configure_logging(
    *,
    run_id: str,
    fmt: Literal["auto", "json", "text"] = "auto",
    verbosity: int = 0,
    stream: TextIO | None = None,
) -> Literal["json", "text"]:
    """Send `batch` logs (and httpx warnings) to `stream`, by default stderr.

    verbosity: -1 warnings and errors only, 0 info, 1 or more debug. "auto" picks text
    on a terminal and JSON lines otherwise. Returns the format chosen.
    """
    reset_logging()
    global _handler
    handler: logging.StreamHandler[TextIO] = (
        logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    )
    use_text = fmt == "text" or (fmt == "auto" and _is_tty(handler.stream))
    handler.setFormatter(TextFormatter() if use_text else JsonFormatter())
    handler.addFilter(RedactingFilter(run_id))
    _handler = handler

    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    for name, lvl in ((LOGGER, level), *((q, logging.WARNING) for q in QUIET_LOGGERS)):
        logger = logging.getLogger(name)
        _saved_levels[name] = logger.level
        logger.setLevel(lvl)
        logger.addHandler(handler)
    return "text" if use_text else "json"


def reset_logging() -> None:
    """Undo configure_logging(): remove its handler and restore the levels it changed."""
    global _handler
    if _handler is None:
        return
    for name, level in _saved_levels.items():
        logger = logging.getLogger(name)
        logger.removeHandler(_handler)
        logger.setLevel(level)
    _saved_levels.clear()
    _handler = None
