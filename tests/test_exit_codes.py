"""Exit codes through the real CLI: 0, 1, 2, 3 (lock held), 4 (credentials, fail-fast) and
5 (the token endpoint cannot be reached)."""

from __future__ import annotations

import contextlib
import csv
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme
from click.testing import CliRunner, Result
from conftest import default_state
from e2e import orders_csv, out_args

from batch import auth
from batch.cli import main
from batch.lock import StateLock
from batch.sandbox import SandboxServer

SandboxFactory = Callable[..., SandboxServer]


def _run(tmp_path: Path, input_path: Path, env: dict[str, str], *extra: str) -> tuple[Result, Path]:
    result = CliRunner().invoke(
        main, out_args(tmp_path, input_path, "--log-format", "json", *extra), env=env
    )
    return result, tmp_path / "out"


def _statuses(out: Path) -> list[str]:
    with (out / "report.csv").open(encoding="utf-8-sig", newline="") as f:
        return [line["status"] for line in csv.DictReader(f)]


def _api_posts(server: SandboxServer) -> int:
    return sum(
        r.method == "POST" and r.path == "/api/external_payments" for r in server.request_log()
    )


def test_exit_0_when_every_row_is_created(sandbox: SandboxServer, tmp_path: Path) -> None:
    result, out = _run(tmp_path, orders_csv(tmp_path, ["A1", "A2", "A3"]), sandbox.env())
    assert result.exit_code == 0, result.stderr
    assert _statuses(out) == ["created"] * 3
    # Rerun: nothing is sent again, and already_created still means success.
    again, out = _run(tmp_path, orders_csv(tmp_path, ["A1", "A2", "A3"]), sandbox.env())
    assert again.exit_code == 0, again.stderr
    assert _statuses(out) == ["already_created"] * 3
    assert _api_posts(sandbox) == 3


def test_exit_1_when_some_rows_are_not_created(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    server = sandbox_factory(orders={"OK1": "pending", "GONE": "placed"}, limits=None)
    result, out = _run(tmp_path, orders_csv(tmp_path, ["OK1", "GONE", ""]), server.env())
    assert result.exit_code == 1, result.stderr
    assert _statuses(out) == ["created", "failed", "invalid"]


def test_exit_2_for_missing_configuration_sends_nothing(tmp_path: Path) -> None:
    result, out = _run(tmp_path, orders_csv(tmp_path, ["A1"]), {"CL_CLIENT_SECRET": ""})
    assert result.exit_code == 2
    assert "CL_BASE_URL" in result.stderr
    assert "Traceback" not in result.output
    assert not (out / "report.csv").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--rate-limit", "lots"], "rate-limit"),
        (["--concurrency", "0"], "concurrency"),
        (["--column", "nonsense"], "column"),
    ],
)
def test_exit_2_for_bad_options(
    sandbox: SandboxServer, tmp_path: Path, args: list[str], needle: str
) -> None:
    result, _ = _run(tmp_path, orders_csv(tmp_path, ["A1"]), sandbox.env(), *args)
    assert result.exit_code == 2
    assert needle in result.stderr
    assert sandbox.request_log() == []


def test_exit_2_for_a_missing_input_file(sandbox: SandboxServer, tmp_path: Path) -> None:
    result, _ = _run(tmp_path, tmp_path / "nope.csv", sandbox.env())
    assert result.exit_code == 2
    assert "nope.csv" in result.stderr
    assert sandbox.request_log() == []


def test_exit_3_while_another_run_holds_the_lock(
    sandbox: SandboxServer, tmp_path: Path, paybatch_home: Path
) -> None:
    # The lock is the organization's and environment's, whatever --state says.
    lock = default_state(sandbox, paybatch_home)
    with StateLock(lock.lock_path):
        result, out = _run(tmp_path, orders_csv(tmp_path, ["A1", "A2"]), sandbox.env())
    assert result.exit_code == 3, result.stderr
    assert f"another paybatch run holds {lock.lock_path}" in result.stderr
    # Only the token, which says the environment: no order was touched.
    assert [r.path for r in sandbox.request_log()] == ["/oauth/token"]
    assert not (out / "report.csv").exists()
    # Once the holder is gone the same command goes through.
    result, _ = _run(tmp_path, orders_csv(tmp_path, ["A1", "A2"]), sandbox.env())
    assert result.exit_code == 0, result.stderr


def test_exit_4_for_bad_client_credentials_within_seconds(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    env = {**sandbox.env(), "CL_CLIENT_SECRET": "not-the-secret"}
    began = time.monotonic()
    result, out = _run(tmp_path, orders_csv(tmp_path, ["A1", "A2", "A3"]), env)
    assert time.monotonic() - began < 5
    assert result.exit_code == 4, result.stderr
    assert "CL_CLIENT_SECRET" in result.stderr  # says what to check
    assert [r.path for r in sandbox.request_log()] == ["/oauth/token"]  # one try, no retries
    assert sandbox.payments_by_order() == {}
    assert _statuses(out) == ["not_attempted"] * 3
    assert json.loads((out / "summary.json").read_text())["exit_code"] == 4


def test_exit_4_when_the_first_rows_all_fail_alike(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    # No orders at all, as with the wrong organization: the preflight finds none of them.
    server = sandbox_factory(orders={}, open_orders=False, limits=None)
    ids = [f"MISSING{i:03d}" for i in range(40)]
    result, out = _run(
        tmp_path,
        orders_csv(tmp_path, ids),
        server.env(),
        "--fail-fast-after",
        "5",
        "--concurrency",
        "1",
    )
    assert result.exit_code == 4, result.stderr
    assert "404 RECORD_NOT_FOUND" in result.stderr
    assert _api_posts(server) == 0  # stopped on the lookups, before a single write
    statuses = _statuses(out)
    assert statuses.count("failed") >= 5
    assert statuses.count("failed") + statuses.count("not_attempted") == len(ids)


def test_fail_fast_can_be_disabled(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    server = sandbox_factory(orders={}, open_orders=False, limits=None)
    ids = [f"MISSING{i:03d}" for i in range(8)]
    result, out = _run(tmp_path, orders_csv(tmp_path, ids), server.env(), "--fail-fast-after", "0")
    assert result.exit_code == 1, result.stderr
    assert _api_posts(server) == 0  # refused by the preflight: not found
    assert _statuses(out) == ["failed"] * len(ids)


def test_no_fail_fast_when_one_of_the_first_rows_succeeds(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    server = sandbox_factory(orders={"REAL1": "pending"}, open_orders=False, limits=None)
    ids = ["MISSING1", "MISSING2", "REAL1", "MISSING3", "MISSING4", "MISSING5", "MISSING6"]
    result, out = _run(
        tmp_path,
        orders_csv(tmp_path, ids),
        server.env(),
        "--fail-fast-after",
        "5",
        "--concurrency",
        "1",
    )
    assert result.exit_code == 1, result.stderr
    assert _api_posts(server) == 1  # REAL1; the missing ones cost lookups only
    assert "not_attempted" not in _statuses(out)


def test_a_state_file_belongs_to_one_organization_and_environment(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    first = sandbox_factory(open_orders=True, limits=None, token_limit=None)
    other = sandbox_factory(open_orders=True, limits=None, token_limit=None, mode="live")
    orders = orders_csv(tmp_path, ["A1", "A2"])
    result, _ = _run(tmp_path, orders, first.env())
    assert result.exit_code == 0, result.output
    result, _ = _run(tmp_path, orders, other.env())
    assert result.exit_code == 2
    assert "use a separate --state for each organization and environment" in result.stderr
    assert _api_posts(other) == 0


@contextlib.contextmanager
def _token_endpoint_down(how: str) -> Iterator[str]:
    """The URL of a token endpoint on 127.0.0.1 that cannot be reached in the way `how` says."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    if how == "refused":
        listener.close()
        yield f"http://127.0.0.1:{port}/oauth/token"
        return
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(tls)  # a CA nobody trusts
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.05)
        held = []
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conn = listener.accept()[0]
                held.append(conn)
                if how == "untrusted":
                    with contextlib.suppress(ssl.SSLError, OSError):
                        tls.wrap_socket(conn, server_side=True)
        for conn in held:  # "silent": accepted, never answered
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    scheme = "https" if how == "untrusted" else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}/oauth/token"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


@pytest.mark.parametrize(
    ("how", "cause"),
    [("refused", "connection refused"), ("untrusted", "TLS"), ("silent", "timeout")],
)
def test_exit_5_when_the_token_endpoint_cannot_be_reached(
    sandbox: SandboxServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
    cause: str,
) -> None:
    monkeypatch.setattr(auth, "TOKEN_ATTEMPTS", 2)  # one retry, 2 s: the cause is the same
    with _token_endpoint_down(how) as auth_url:
        env = {**sandbox.env(), "CL_AUTH_URL": auth_url}
        result, out = _run(tmp_path, orders_csv(tmp_path, ["A1", "A2"]), env, "--timeout", "0.5")
    assert result.exit_code == 5, result.stderr
    assert f"could not reach the token endpoint {auth_url} ({cause})" in result.stderr
    assert "Traceback" not in result.output
    assert sandbox.request_log() == []
    assert _statuses(out) == ["not_attempted"] * 2
    assert json.loads((out / "summary.json").read_text())["exit_code"] == 5


def test_reconcile_exits_5_when_the_token_endpoint_cannot_be_reached(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, out = _run(tmp_path, orders_csv(tmp_path, ["A1"]), sandbox.env())
    assert result.exit_code == 0, result.stderr
    monkeypatch.setattr(auth, "TOKEN_ATTEMPTS", 1)
    with _token_endpoint_down("refused") as auth_url:
        args = ["reconcile", "--state", str(out / "state.sqlite"), "--report", str(out / "rec.csv")]
        result = CliRunner().invoke(main, args, env={**sandbox.env(), "CL_AUTH_URL": auth_url})
    assert result.exit_code == 5, result.output
    assert "(connection refused)" in result.stderr
