"""`paybatch serve` as a user starts it: the printed address, SIGTERM, a busy port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import SandboxFactory


def start_serve(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "batch", "serve", "--no-browser", *args],
        env={**os.environ, **env, "TMPDIR": str(scratch)},
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )


def printed_url(process: subprocess.Popen[str]) -> str:
    assert process.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        found = re.search(r"open (http://127\.0\.0\.1:\d+/\?token=\S+)", line)
        if found:
            return found[1]
    raise AssertionError("paybatch serve printed no address")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM from outside is POSIX")
def test_serve_prints_a_token_url_and_stops_cleanly_on_sigterm(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sandbox = sandbox_factory(open_orders=True, limits=None, token_limit=None)
    process = start_serve(tmp_path, sandbox.env())
    try:
        url = printed_url(process)
        base = url.split("/?")[0]
        assert httpx.get(base + "/").status_code == 403
        with httpx.Client() as http:
            page = http.get(url, follow_redirects=True)
            assert page.status_code == 200
            assert 'id="environment">TEST<' in page.text
            assert "sandbox-secret" not in page.text
            (uploads,) = (tmp_path / "tmp").glob("paybatch-web-*")  # the private upload folder
            assert uploads.stat().st_mode & 0o777 == 0o700
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "stopping" in err
    assert "Traceback" not in err
    assert not list((tmp_path / "tmp").glob("paybatch-web-*"))  # uploads are gone


def test_a_busy_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = start_serve(tmp_path, {}, "--port", str(port))
        _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert (
        err.strip().splitlines()[-1]
        == f"paybatch: error: cannot listen on 127.0.0.1:{port}: in use"
    )
    assert "Traceback" not in err


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM from outside is POSIX")
def test_serve_sandbox_rehearses_the_sample_without_credentials(tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parent.parent / "sample_data" / "orders.csv"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CL_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "batch", "serve", "--no-browser", "--sandbox"],
        env=clean,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = printed_url(process)
        with httpx.Client(base_url=url.split("/?")[0], timeout=30) as http:
            http.get(url)
            csrf = re.search(r'name="csrf" value="([^"]+)"', http.get("/").text)
            assert csrf is not None
            checked = http.post(
                "/upload",
                data={"csrf": csrf[1]},
                files={"file": ("orders.csv", sample.read_bytes(), "text/csv")},
                follow_redirects=True,
            )
        assert 'id="environment">TEST<' in checked.text
        assert re.search(
            r"Create \d+ external payments in TEST organization 127\.0\.0\.1:", checked.text
        )
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0
