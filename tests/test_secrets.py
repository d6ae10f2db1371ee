"""The secrets scan: a whole job, then every output file and all output searched for secrets."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from batch.cli import main
from batch.sandbox import Faults, SandboxServer

SandboxFactory = Callable[..., SandboxServer]


CLIENT_SECRET = "cs_5Ecr3t-NEVER-PRINT-ME-9f8e7d"
CARD_NUMBER = "4111 1111 1111 1111"  # refused by input checks, still a raw token


def _tokens(n: int) -> list[str]:
    return [f"tok_raw_{i:03d}_QmVyeVNlY3JldA{i:03d}" for i in range(n)]


def _record_bearer_tokens(server: SandboxServer) -> list[str]:
    """Every access token the sandbox issues from now on (the issuer keeps only their ids)."""
    issued: list[str] = []
    issuer = server.sandbox.tokens
    issue = issuer.issue

    def recording(client_id: str, scope: str) -> dict[str, Any]:
        body = issue(client_id, scope)
        issued.append(body["access_token"])
        return body

    issuer.issue = recording  # type: ignore[method-assign]
    return issued


def _needles(secrets: list[str]) -> list[bytes]:
    """Each secret in the encodings a file could hold it in; JWTs also by signature alone."""
    found: list[bytes] = []
    for secret in secrets:
        forms = {secret}
        if secret.count(".") == 2:
            forms.add(secret.rsplit(".", 1)[1])
        for form in forms:
            found += [form.encode("utf-8"), form.encode("utf-16-le")]
    return found


def _blobs(directory: Path) -> Iterator[tuple[str, bytes]]:
    """Every file under `directory`, and every member of every zip (the XLSX) inside it."""
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        data = path.read_bytes()
        yield str(path), data
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for name in archive.namelist():
                    yield f"{path}!{name}", archive.read(name)


def _leaks(secrets: list[str], blobs: Iterator[tuple[str, bytes]]) -> list[str]:
    needles = _needles(secrets)
    return [name for name, data in blobs for needle in needles if needle in data]


def _write_input(path: Path, tokens: list[str]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["order_id", "payment_source_token", "reference", "notes"])
        for i, token in enumerate(tokens):
            # Secrets in free text too: carried columns are copied to the report as typed,
            # so the scan only counts what paybatch itself adds.
            writer.writerow([f"ORD{i:04d}", token, f"INV-{i}", "ok"])
        writer.writerow(["PLACED1", "tok_raw_placed_SECRETPLACED", "", "placed order: 422"])
        writer.writerow(["CARD1", CARD_NUMBER, "", "card number: invalid"])
        writer.writerow(["ORD0000", "tok_raw_dup_SECRETDUPLICATE", "", "duplicate"])


def test_whole_job_leaks_no_secret_anywhere(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    server = sandbox_factory(
        client_secret=CLIENT_SECRET,
        open_orders=True,
        orders={"PLACED1": "placed"},
        limits=None,
        token_limit=None,
        token_ttl=1.0,  # short, so the run refreshes its token at least once
        faults=Faults(latency_ms=(25.0, 25.0)),
    )
    bearer = _record_bearer_tokens(server)
    tokens = _tokens(60)
    (tmp_path / "in").mkdir()
    input_path = tmp_path / "in" / "orders.csv"
    _write_input(input_path, tokens)
    out = tmp_path / "out"

    # A real process, as cron runs it: stderr is a pipe, so logs are JSON lines.
    # The organization's lock goes beside the state, so the scan sees it too.
    env = {**os.environ, **server.env(), "PAYBATCH_HOME": str(out)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "batch",
            "run",
            str(input_path),
            "-v",
            "--state",
            str(out / "state.sqlite"),
            "--report",
            str(out / "run.csv"),
            "--summary-json",
            str(out / "summary.json"),
            "--concurrency",
            "2",
            "--rate-limit",  # the sandbox has none; the test environment's defaults are slow
            "1000/1s",
        ],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr.decode()  # placed, card and duplicate rows
    assert len(server.payments_by_order()) == len(tokens)

    # The audit reads every payment back, token filters included.
    audit = CliRunner().invoke(
        main,
        [
            "reconcile",
            "--state",
            str(out / "state.sqlite"),
            "--report",
            str(out / "audit.csv"),
            "-v",
            "--log-format",
            "json",
        ],
        env=server.env(),
    )
    assert audit.exit_code == 0, audit.stderr

    assert len(bearer) >= 2  # one per run at least, so the scan has real tokens to look for
    secrets = [
        CLIENT_SECRET,
        *bearer,
        *tokens,
        CARD_NUMBER,
        CARD_NUMBER.replace(" ", ""),
        "tok_raw_placed_SECRETPLACED",
        "tok_raw_dup_SECRETDUPLICATE",
    ]
    outputs = [
        ("run stdout", proc.stdout),
        ("run stderr", proc.stderr),
        ("reconcile stdout", audit.stdout_bytes),
        ("reconcile stderr", audit.stderr_bytes),
    ]
    files = list(_blobs(out))
    names = {Path(name.split("!")[0]).name for name, _ in files}
    assert {"state.sqlite", "run.csv", "run.xlsx"} <= names
    assert any(name.endswith("-test.lock") for name in names)
    assert {"summary.json", "audit.csv"} <= names
    assert any("!xl/worksheets/" in name for name, _ in files)
    assert proc.stderr.count(b"\n") > 3
    assert b"run finished" in proc.stderr
    assert _leaks(secrets, iter(outputs + files)) == []


def test_the_scan_finds_a_planted_secret(tmp_path: Path) -> None:
    """The scanner itself can fail: a token hidden in an XLSX member or UTF-16 text is found."""
    book = tmp_path / "r.xlsx"
    with zipfile.ZipFile(book, "w") as archive:
        archive.writestr("xl/sharedStrings.xml", "<t>tok_raw_007_QmVyeVNlY3JldA007</t>")
    (tmp_path / "state.sqlite-wal").write_bytes("xx eyJh.eyJi.c2ln yy".encode("utf-16-le"))
    leaks = _leaks(["tok_raw_007_QmVyeVNlY3JldA007", "eyJh.eyJi.c2ln"], _blobs(tmp_path))
    assert any(name.endswith("!xl/sharedStrings.xml") for name in leaks)
    assert any(name.endswith("state.sqlite-wal") for name in leaks)


def test_refused_credentials_do_not_echo_the_secret(sandbox: SandboxServer, tmp_path: Path) -> None:
    wrong = "cs_wrong-SECRET-typed-by-hand-1234"
    (tmp_path / "in").mkdir()
    input_path = tmp_path / "in" / "orders.csv"
    _write_input(input_path, _tokens(3))
    out = tmp_path / "out"
    for fmt in ("json", "text"):
        result = CliRunner().invoke(
            main,
            [
                "run",
                str(input_path),
                "--state",
                str(out / "s.sqlite"),
                "-v",
                "--report",
                str(out / f"{fmt}.csv"),
                "--log-format",
                fmt,
                "--summary-json",
                str(out / f"{fmt}.json"),
            ],
            env={**sandbox.env(), "CL_CLIENT_SECRET": wrong},
        )
        assert result.exit_code == 4, result.stderr
        assert wrong not in result.output
    assert _leaks([wrong, *_tokens(3)], iter(list(_blobs(out)))) == []


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["reconcile", "--help"]])
def test_help_never_shows_secrets(args: list[str]) -> None:
    env = {
        "CL_BASE_URL": "https://acme.commercelayer.io",
        "CL_CLIENT_ID": "client-id-visible",
        "CL_CLIENT_SECRET": CLIENT_SECRET,
    }
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 0
    assert "CL_CLIENT_SECRET" in result.output or "Usage:" in result.output
    assert CLIENT_SECRET not in result.output
