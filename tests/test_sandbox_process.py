"""`python -m batch.sandbox` as a separate process: the JSON line, control routes, SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
JSONAPI = "application/vnd.api+json"


def test_process_mode_serves_and_reports_state() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "batch.sandbox", "--port", "0", "--open-orders", "--no-limits"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["pid"] == proc.pid
        assert info["mode"] == "test"
        env = info["env"]
        assert env["CL_BASE_URL"] == info["base_url"]
        assert env["CL_AUTH_URL"] == info["base_url"] + "/oauth/token"
        assert info["base_url"].startswith("http://127.0.0.1:")
        with httpx.Client(base_url=info["base_url"], timeout=10) as c:
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
                    "relationships": {"order": {"data": {"type": "orders", "id": "PROC000001"}}},
                }
            }
            auth = {"Authorization": f"Bearer {token}", "Accept": JSONAPI}
            created = c.post(
                "/api/external_payments",
                content=json.dumps(doc),
                headers={**auth, "Content-Type": JSONAPI},
            )
            assert created.status_code == 201
            payments = c.get("/_sandbox/payments").json()["payments_by_order"]
            assert [p["id"] for p in payments["PROC000001"]] == [created.json()["data"]["id"]]
            summary = c.get("/_sandbox/requests", params={"summary": "1"}).json()
            assert summary["by_status"] == {"200": 1, "201": 1}
            assert "requests" not in summary
            full = c.get("/_sandbox/requests").json()["requests"]
            assert [r["status"] for r in full] == [200, 201]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


def test_process_mode_rejects_bad_flags() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "batch.sandbox", "--limit", "lots"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "not a rate limit" in result.stderr
