"""Logging: JSON lines off a terminal, text on one, run ID everywhere, secrets nowhere."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime

import pytest

from batch.logs import configure_logging, register_secret, reset_logging

log = logging.getLogger("batch.test")


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    reset_logging()


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_off_a_tty() -> None:
    out = io.StringIO()
    configure_logging(run_id="run-7", stream=out)
    log.info("row %s created", 12, extra={"order_id": "ord1", "attempts": 2})
    (doc,) = json_lines(out)
    assert doc["run_id"] == "run-7"
    assert doc["level"] == "INFO"
    assert doc["logger"] == "batch.test"
    assert doc["msg"] == "row 12 created"
    assert doc["order_id"] == "ord1"
    assert doc["attempts"] == 2
    ts = str(doc["ts"])
    assert ts.endswith("Z")
    assert datetime.fromisoformat(ts.replace("Z", "+00:00")).utcoffset() is not None


def test_text_on_a_tty() -> None:
    out = TtyStream()
    configure_logging(run_id="run-8", stream=out)
    log.warning("slow down", extra={"retry_after": 3})
    line = out.getvalue().strip()
    assert "[run-8]" in line
    assert "WARNING" in line
    assert "batch.test" in line
    assert line.endswith("slow down retry_after=3")
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_explicit_format_overrides_tty() -> None:
    out = TtyStream()
    configure_logging(run_id="r", fmt="json", stream=out)
    log.info("x")
    assert json_lines(out)[0]["run_id"] == "r"

    plain = io.StringIO()
    configure_logging(run_id="r", fmt="text", stream=plain)
    log.info("y")
    assert plain.getvalue().rstrip().endswith("[r] y")


@pytest.mark.parametrize(
    ("verbosity", "expected"),
    [
        (-1, ["WARNING", "ERROR"]),
        (0, ["INFO", "WARNING", "ERROR"]),
        (1, ["DEBUG", "INFO", "WARNING", "ERROR"]),
    ],
)
def test_verbosity_levels(verbosity: int, expected: list[str]) -> None:
    out = io.StringIO()
    configure_logging(run_id="r", verbosity=verbosity, stream=out)
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    assert [d["level"] for d in json_lines(out)] == expected


def test_httpx_info_is_silenced_but_warnings_pass() -> None:
    out = io.StringIO()
    configure_logging(run_id="r", verbosity=1, stream=out)
    logging.getLogger("httpx").info("HTTP Request: POST https://x/api")
    logging.getLogger("httpcore.connection").debug("connect_tcp.started")
    logging.getLogger("httpx").warning("pool exhausted")
    docs = json_lines(out)
    assert [d["msg"] for d in docs] == ["pool exhausted"]
    assert docs[0]["run_id"] == "r"


def test_reconfiguring_does_not_duplicate_handlers() -> None:
    first = io.StringIO()
    configure_logging(run_id="a", stream=first)
    out = io.StringIO()
    for _ in range(3):
        configure_logging(run_id="b", stream=out)
    log.info("once")
    assert len(json_lines(out)) == 1
    assert first.getvalue() == ""
    assert json_lines(out)[0]["run_id"] == "b"


def test_reset_restores_levels_and_root_is_untouched() -> None:
    root_handlers = list(logging.getLogger().handlers)
    before = {n: logging.getLogger(n).level for n in ("batch", "httpx", "httpcore")}
    configure_logging(run_id="r", verbosity=1, stream=io.StringIO())
    assert logging.getLogger().handlers == root_handlers
    reset_logging()
    assert {n: logging.getLogger(n).level for n in before} == before
    assert logging.getLogger("batch").handlers == []


def test_registered_secret_is_redacted_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    secret = "cl-secret-5c9a1e77b0"
    register_secret(secret)
    out = io.StringIO()
    configure_logging(run_id="r", stream=out)
    log.info("using %s now", secret, extra={"config": {"client_secret": secret}, "plain": secret})
    try:
        raise ValueError(f"bad secret {secret}")
    except ValueError:
        log.exception("failed")
    text = out.getvalue()
    assert secret not in text
    first, second = json_lines(out)
    assert first["msg"] == "using *** now"
    assert first["plain"] == "***"
    assert "***" in str(first["config"])
    assert "ValueError: bad secret ***" in str(second["exc"])
    # The record is scrubbed in place, so handlers up the chain (here pytest's) see it clean.
    assert secret not in caplog.text
    assert all(secret not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "message",
    [
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc-_DEF==",
        "header bearer abc123XYZ/+= sent",
    ],
)
def test_bearer_tokens_are_redacted(message: str) -> None:
    out = io.StringIO()
    configure_logging(run_id="r", stream=out)
    log.info(message)
    msg = str(json_lines(out)[0]["msg"])
    assert "***" in msg
    assert "eyJ" not in msg
    assert "abc123" not in msg


def test_bad_log_arguments_do_not_raise() -> None:
    out = io.StringIO()
    configure_logging(run_id="r", stream=out)
    log.info("two %s %s", "args-missing")
    assert "unformattable" in str(json_lines(out)[0]["msg"])


def test_default_stream_follows_sys_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    configure_logging(run_id="r")
    swapped = io.StringIO()
    # CliRunner swaps sys.stderr per invocation; the handler must not pin an old one.
    monkeypatch.setattr("sys.stderr", swapped)
    log.info("to the new stderr")
    assert json_lines(swapped)[0]["msg"] == "to the new stderr"


def test_extras_cannot_overwrite_fixed_fields() -> None:
    out = io.StringIO()
    configure_logging(run_id="real", stream=out)
    log.info("m", extra={"level": "FAKE", "ts": "then", "other": 1})
    doc = json_lines(out)[0]
    assert doc["level"] == "INFO"
    assert doc["ts"] != "then"
    assert doc["run_id"] == "real"
    assert doc["other"] == 1
