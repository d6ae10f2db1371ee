"""The LIVE prompt: asked on a terminal, skipped by --yes, never asked without a terminal."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SandboxFactory
from e2e import ROOT, cli_env, orders_csv, post_count

from batch.sandbox import SandboxServer

pty = pytest.importorskip("pty")  # POSIX only

QUESTION = b"Create 2 external payments in the LIVE organization"


@pytest.fixture
def live(sandbox_factory: SandboxFactory) -> SandboxServer:
    return sandbox_factory(mode="live", open_orders=True, limits=None, token_limit=None)


def _args(tmp_path: Path, *more: str) -> list[str]:
    source = orders_csv(tmp_path, ["L1", "L2"])
    state = tmp_path / "out" / "state.sqlite"
    report = tmp_path / "out" / "r.csv"
    return [
        *(sys.executable, "-m", "batch", "run", str(source), "--state", str(state)),
        *("--report", str(report), "--rate-limit", "1000/1s", "--no-progress", *more),
    ]


def _on_a_terminal(args: list[str], env: dict[str, str], answer: bytes | None) -> tuple[int, bytes]:
    """Run with stdin, stdout and stderr on a pseudo-terminal; answer the prompt if asked."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    seen = b""
    answered = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
            if answer is not None and not answered and b"[y/N]" in seen:
                os.write(master, answer)
                answered = True
        return proc.wait(timeout=30), seen
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


def test_live_run_on_a_terminal_asks_and_no_sends_nothing(
    live: SandboxServer, tmp_path: Path
) -> None:
    code, seen = _on_a_terminal(_args(tmp_path), cli_env(live.env()), b"n\n")
    host = live.base_url.split("//")[1].encode()  # not a commercelayer.io host: shown whole
    assert QUESTION + b" " + host + b"? [y/N]" in seen
    assert code == 1
    assert b"not confirmed: nothing sent" in seen
    assert post_count(live) == 0


def test_live_run_on_a_terminal_asks_and_yes_pays(live: SandboxServer, tmp_path: Path) -> None:
    code, seen = _on_a_terminal(_args(tmp_path), cli_env(live.env()), b"y\n")
    assert QUESTION in seen
    assert code == 0, seen.decode(errors="replace")
    assert sorted(live.payments_by_order()) == ["L1", "L2"]


def test_yes_skips_the_question(live: SandboxServer, tmp_path: Path) -> None:
    code, seen = _on_a_terminal(_args(tmp_path, "--yes"), cli_env(live.env()), None)
    assert QUESTION not in seen
    assert code == 0, seen.decode(errors="replace")
    assert post_count(live) == 2


def test_without_a_terminal_it_never_asks(live: SandboxServer, tmp_path: Path) -> None:
    done = subprocess.run(
        _args(tmp_path),
        cwd=ROOT,
        env=cli_env(live.env()),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert QUESTION not in done.stderr + done.stdout
    assert post_count(live) == 2


def test_a_test_environment_is_never_asked_about(sandbox: SandboxServer, tmp_path: Path) -> None:
    code, seen = _on_a_terminal(_args(tmp_path), cli_env(sandbox.env()), None)
    assert b"[y/N]" not in seen
    assert code == 0, seen.decode(errors="replace")
