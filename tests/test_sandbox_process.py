"""The sandbox as its own process: `paybatch sandbox` (export lines), `python -m
batch.sandbox` (one JSON line), control routes, SIGTERM, and one-line errors."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from batch.cli import main

ROOT = Path(__file__).resolve().parent.parent
JSONAPI = "application/vnd.api+json"
PAYBATCH_SANDBOX = [sys.executable, "-m", "batch", "sandbox"]
MODULE = [sys.executable, "-m", "batch.sandbox"]


@contextmanager
def running(command: list[str]) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


def create_one(env: dict[str, str], order_id: str) -> httpx.Response:
    with httpx.Client(base_url=env["CL_BASE_URL"], timeout=10) as c:
        token = c.post(
            env["CL_AUTH_URL"],
            json={
                "grant_type": "client_credentials",
                "client_id": env["CL_CLIENT_ID"],
                "client_secret": env["CL_CLIENT_SECRET"],
            },
        ).json()["access_token"]
        doc = {
            "data": {
                "type": "external_payments",
                "attributes": {"payment_source_token": "tok_live_proc"},
                "relationships": {"order": {"data": {"type": "orders", "id": order_id}}},
            }
        }
        return c.post(
            "/api/external_payments",
            content=json.dumps(doc),
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": JSONAPI,
                "Content-Type": JSONAPI,
            },
        )


def test_module_prints_one_json_line_and_serves() -> None:
    with running([*MODULE, "--port", "0", "--open-orders", "--no-limits"]) as proc:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["pid"] == proc.pid
        assert info["mode"] == "test"
        env = info["env"]
        assert env["CL_BASE_URL"] == info["base_url"]
        assert env["CL_AUTH_URL"] == info["base_url"] + "/oauth/token"
        assert info["base_url"].startswith("http://127.0.0.1:")
        created = create_one(env, "PROC000001")
        assert created.status_code == 201
        with httpx.Client(base_url=info["base_url"], timeout=10) as c:
            payments = c.get("/_sandbox/payments").json()["payments_by_order"]
            assert [p["id"] for p in payments["PROC000001"]] == [created.json()["data"]["id"]]
            summary = c.get("/_sandbox/requests", params={"summary": "1"}).json()
            assert summary["by_status"] == {"200": 1, "201": 1}
            assert "requests" not in summary
            full = c.get("/_sandbox/requests").json()["requests"]
            assert [r["status"] for r in full] == [200, 201]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_paybatch_sandbox_prints_the_export_lines_it_documents() -> None:
    with running([*PAYBATCH_SANDBOX, "--port", "0", "--no-limits"]) as proc:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().rstrip("\n") for _ in range(4)]
        env = {}
        for line in lines:
            assert line.startswith("export ")
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = value
        assert list(env) == ["CL_BASE_URL", "CL_AUTH_URL", "CL_CLIENT_ID", "CL_CLIENT_SECRET"]
        assert create_one(env, "tH41tk7mXH").status_code == 201  # a seeded pending order
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    help_text = CliRunner().invoke(main, ["sandbox", "--help"]).output
    for name in env:
        assert f"export {name}=" in help_text


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    return line


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PAYBATCH_SANDBOX, *args], cwd=ROOT, capture_output=True, text=True, timeout=30
    )


def test_busy_port_is_one_line_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_error(run(["--port", str(port)]))
    assert line == (
        f"paybatch sandbox: error: port {port} on 127.0.0.1 is already in use; "
        "choose another --port (0 picks one)"
    )


def test_bad_orders_file_is_one_line_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    assert f"cannot read --orders {missing}" in one_line_error(run(["--orders", str(missing)]))
    bad = tmp_path / "orders.csv"
    bad.write_text("id,status\nA1,paid\n", encoding="utf-8")
    line = one_line_error(run(["--orders", str(bad)]))
    assert line.endswith("seed orders, row 2: unknown order status 'paid'")


def test_bad_flags_are_usage_errors() -> None:
    result = subprocess.run(
        [*MODULE, "--limit", "lots"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "not a rate limit" in result.stderr
    assert "python -m batch.sandbox" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_option_reaches_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    import batch.sandbox

    served: dict[str, Any] = {}

    def fake_serve(config: Any, **where: Any) -> None:
        served.update(where, config=config)

    monkeypatch.setattr(batch.sandbox, "serve", fake_serve)
    args = [
        "--port", "8765", "--mode", "live", "--limit", "25/1s:endpoint", "--limit", "100/6s",
        "--no-token-limit", "--no-retry-after", "--count-rejected", "--foreign-rate", "30/6s",
        "--no-ratelimit-headers", "--open-orders", "--second-source", "refuse",
        "--ignore-filters", "--number-filter-unsupported", "--token-ttl", "60", "--seed", "7",
        "--p-5xx", "0.1", "--p-drop-before", "0.2", "--p-drop-after", "0.3", "--p-late", "0.4",
        "--late-seconds", "2", "--storm-p", "0.5", "--storm-every", "10", "--storm-seconds",
        "1", "--latency-ms", "40,160",
    ]  # fmt: skip
    result = CliRunner().invoke(main, ["sandbox", *args])
    assert result.exit_code == 0, result.output
    config = served["config"]
    assert served["port"] == 8765
    assert [(x.limit, x.seconds, x.scope) for x in config.limits] == [
        (25, 1.0, "endpoint"),
        (100, 6.0, "class"),
    ]
    assert (config.mode, config.token_limit, config.retry_after) == ("live", None, False)
    assert (config.count_rejected, config.foreign_rate) == (True, (30, 6.0))
    assert (config.ratelimit_headers, config.open_orders, config.second_source) == (
        False,
        True,
        "refuse",
    )
    assert (config.ignore_filters, config.number_filter) == (True, False)
    assert (config.token_ttl, config.seed) == (60.0, 7)
    f = config.faults
    assert (f.p_5xx, f.p_drop_before, f.p_drop_after, f.p_late) == (0.1, 0.2, 0.3, 0.4)
    assert (f.late_seconds, f.storm_p, f.storm_every, f.storm_seconds) == (2.0, 0.5, 10.0, 1.0)
    assert f.latency_ms == (40.0, 160.0)
    defaults = CliRunner().invoke(main, ["sandbox"])
    assert defaults.exit_code == 0, defaults.output
    assert served["config"] == batch.sandbox.SandboxConfig()
