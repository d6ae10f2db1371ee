"""Log format through the real CLI: JSON lines under cron, text and a bar on a terminal."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

from click.testing import CliRunner
from e2e import orders_csv, out_args

from batch.cli import main
from batch.sandbox import SandboxServer

TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT[\d:.]+Z (INFO|WARNING|ERROR|DEBUG)\s+\S+ \[(?P<run>[^]]+)\] "
)


def _json_lines(stderr: str) -> list[dict[str, object]]:
    """Every stderr line, each of which must be a JSON object."""
    lines = [line for line in stderr.split("\n") if line]
    assert lines
    docs = [json.loads(line) for line in lines]
    assert all(isinstance(doc, dict) for doc in docs)
    return docs


def test_cron_gets_json_lines_only_each_with_the_run_id(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """A real process with stderr on a pipe, as under cron: no text, no bar, no `\\r`."""
    ids = ["A1", "A2", "", "A2"]  # created, created, invalid, duplicate
    proc = subprocess.run(
        [sys.executable, "-m", "batch", *out_args(tmp_path, orders_csv(tmp_path, ids))],
        env={**os.environ, **sandbox.env()},
        capture_output=True,
        timeout=60,
        check=False,
    )
    stderr = proc.stderr.decode("utf-8")
    assert proc.returncode == 1, stderr
    assert "\r" not in stderr
    assert proc.stdout == b""
    docs = _json_lines(stderr)
    run_ids = {doc["run_id"] for doc in docs}
    assert len(run_ids) == 1
    assert None not in run_ids
    for doc in docs:
        assert {"ts", "level", "logger", "msg"} <= set(doc)
    messages = [str(doc["msg"]) for doc in docs]
    assert "run started" in messages
    assert "run finished" in messages
    assert "4 rows: 2 created, 1 duplicate, 1 invalid" in messages  # the summary, as JSON


def test_log_lines_and_summary_name_the_same_run(sandbox: SandboxServer, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, out_args(tmp_path, orders_csv(tmp_path, ["A1"])), env=sandbox.env()
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert {doc["run_id"] for doc in _json_lines(result.stderr)} == {summary["run_id"]}


def test_auto_format_off_a_tty_is_json_in_process(sandbox: SandboxServer, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, out_args(tmp_path, orders_csv(tmp_path, ["A1"])), env=sandbox.env()
    )
    assert result.exit_code == 0, result.stderr
    assert len({doc["run_id"] for doc in _json_lines(result.stderr)}) == 1


def test_text_format_carries_the_run_id_on_every_log_line(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        main,
        out_args(tmp_path, orders_csv(tmp_path, ["A1", "A2"]), "--log-format", "text"),
        env=sandbox.env(),
    )
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line]
    logged = [m for m in map(TEXT_LINE.match, lines) if m]
    assert len({m["run"] for m in logged}) == 1
    assert any("run finished" in line for line in lines)
    # In text mode the closing summary is for people: plain lines, no JSON anywhere.
    assert "2 rows: 2 created" in lines
    assert not any(line.startswith("{") for line in lines)


def test_json_format_errors_are_json_too(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        out_args(tmp_path, tmp_path / "missing.csv", "--log-format", "json"),
        env={"CL_BASE_URL": "http://127.0.0.1:9", "CL_CLIENT_ID": "x", "CL_CLIENT_SECRET": "y"},
    )
    assert result.exit_code == 2
    docs = _json_lines(result.stderr)
    errors = [doc for doc in docs if doc["level"] == "ERROR"]
    assert len(errors) == 1
    assert "missing.csv" in str(errors[0]["msg"])


def test_quiet_keeps_only_warnings_and_errors(sandbox: SandboxServer, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, out_args(tmp_path, orders_csv(tmp_path, ["A1"]), "-q"), env=sandbox.env()
    )
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""


def _read_all(fd: int, into: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO once the child has closed its end of the terminal
            return
        if not chunk:
            return
        into.extend(chunk)


def test_on_a_terminal_logs_are_text_with_a_progress_bar(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    ids = [f"T{i}" for i in range(5)]
    leader, follower = pty.openpty()
    # A new pty is 0x0; tqdm sizes its bar from the terminal, as it would in a real one.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    seen = bytearray()
    reader = threading.Thread(target=_read_all, args=(leader, seen), daemon=True)
    reader.start()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "batch", *out_args(tmp_path, orders_csv(tmp_path, ids))],
            env={**os.environ, **sandbox.env()},
            stdout=subprocess.PIPE,
            stderr=follower,
            timeout=60,
            check=False,
        )
    finally:
        os.close(follower)
    reader.join(10)
    os.close(leader)
    text = seen.decode("utf-8", "replace")
    assert proc.returncode == 0, text
    assert "\r" in text  # tqdm redraws on a terminal (the pty also turns \n into \r\n)
    assert "5/5" in text
    lines = [line.strip("\r") for line in re.split(r"[\r\n]+", text) if line.strip()]
    assert not any(line.startswith("{") for line in lines)
    logged = [m for m in map(TEXT_LINE.match, lines) if m]
    assert len({m["run"] for m in logged}) == 1
    assert any("run finished" in line for line in lines)
