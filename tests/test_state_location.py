"""Where the state lives: per organization and environment in the data dir, whatever the cwd.

The end-to-end cases count the payments on the sandbox: a run that lost its state would
pay every order a second time.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import openpyxl
import platformdirs
import pytest
from click.testing import CliRunner, Result
from conftest import default_state
from e2e import ROOT, orders_csv, read_report

from batch.cli import main
from batch.journal import Journal
from batch.sandbox import SandboxServer
from batch.statefile import LEGACY_STATE_PATH, data_dir, locate, org_slug


def test_the_default_state_is_named_after_organization_and_environment(tmp_path: Path) -> None:
    test = locate(
        api_host="acme.commercelayer.io", environment="test", chosen=None, directory=tmp_path
    )
    live = locate(
        api_host="acme.commercelayer.io", environment="live", chosen=None, directory=tmp_path
    )
    assert (test.path, test.lock_path) == (
        tmp_path / "acme-test.sqlite",
        tmp_path / "acme-test.lock",
    )
    assert (live.path, live.lock_path) == (
        tmp_path / "acme-live.sqlite",
        tmp_path / "acme-live.lock",
    )


def test_state_chosen_elsewhere_keeps_the_organizations_lock(tmp_path: Path) -> None:
    chosen = tmp_path / "mine.sqlite"
    found = locate(
        api_host="acme.commercelayer.io",
        environment="test",
        chosen=chosen,
        directory=tmp_path / "home",
    )
    assert found.path == chosen
    assert found.lock_path == tmp_path / "home" / "acme-test.lock"
    assert found.default == tmp_path / "home" / "acme-test.sqlite"


@pytest.mark.parametrize(
    ("host", "slug"),
    [
        ("acme.commercelayer.io", "acme"),
        ("ACME.commercelayer.io:443", "acme"),
        ("127.0.0.1:5555", "127-0-0-1-5555"),
        ("localhost:8080", "localhost-8080"),
        ("[::1]:9000", "1-9000"),
    ],
)
def test_org_slug(host: str, slug: str) -> None:
    assert org_slug(host) == slug


def test_the_data_dir_is_paybatch_home_or_the_users(tmp_path: Path) -> None:
    assert data_dir({"PAYBATCH_HOME": str(tmp_path)}) == tmp_path
    assert data_dir({}) == platformdirs.user_data_path("paybatch")


def test_tests_never_use_the_real_data_dir(paybatch_home: Path) -> None:
    assert data_dir() == paybatch_home != platformdirs.user_data_path("paybatch")


# -- end to end ---------------------------------------------------------------------------


def _run(input_path: Path, env: dict[str, str], *extra: str) -> Result:
    args = ["run", str(input_path), "--no-xlsx", "--log-format", "text", "--rate-limit", "1000/1s"]
    return CliRunner().invoke(main, [*args, *extra], env=env)


def _posts(server: SandboxServer) -> int:
    return sum(
        r.method == "POST" and r.path == "/api/external_payments" for r in server.request_log()
    )


def _statuses(result: Result, cwd: Path) -> list[str]:
    report = next(line for line in result.stderr.splitlines() if line.startswith("report: "))
    return [line["status"] for line in read_report(cwd / report.removeprefix("report: "))]


def test_a_run_from_another_directory_uses_the_same_state(
    sandbox: SandboxServer, tmp_path: Path, paybatch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = orders_csv(tmp_path, ["A1", "A2", "A3"])
    expected = default_state(sandbox, paybatch_home).path
    for cwd in (tmp_path / "one", tmp_path / "two"):
        cwd.mkdir()
        monkeypatch.chdir(cwd)
        result = _run(source, sandbox.env())
        assert result.exit_code == 0, result.stderr
        assert f"state: {expected}" in result.stderr
    assert _statuses(result, tmp_path / "two") == ["already_created"] * 3
    assert _posts(sandbox) == 3
    assert {o: len(p) for o, p in sandbox.payments_by_order().items()} == {
        "A1": 1,
        "A2": 1,
        "A3": 1,
    }
    assert not list((tmp_path / "one").glob("reports/*.sqlite"))


def test_paybatch_state_overrides_the_default(
    sandbox: SandboxServer, tmp_path: Path, paybatch_home: Path
) -> None:
    state = tmp_path / "elsewhere" / "state.sqlite"
    result = _run(orders_csv(tmp_path, ["A1"]), {**sandbox.env(), "PAYBATCH_STATE": str(state)})
    assert result.exit_code == 0, result.stderr
    assert f"state: {state}" in result.stderr
    assert Journal.open(state).records()[0].order_id == "A1"
    assert not default_state(sandbox, paybatch_home).path.exists()


def test_the_summary_sheet_says_where_the_state_is(
    sandbox: SandboxServer, tmp_path: Path, paybatch_home: Path
) -> None:
    report = tmp_path / "report.csv"
    args = ["run", str(orders_csv(tmp_path, ["A1"])), "--report", str(report), "-q"]
    result = CliRunner().invoke(main, args, env=sandbox.env())
    assert result.exit_code == 0, result.stderr
    book = openpyxl.load_workbook(report.with_suffix(".xlsx"), read_only=True)
    summary = {r[0]: r[1] for r in book["Summary"].iter_rows(values_only=True) if r and r[0]}
    book.close()
    assert summary["State file"] == str(default_state(sandbox, paybatch_home).path)


def test_a_0_byte_state_file_is_a_new_one(sandbox: SandboxServer, tmp_path: Path) -> None:
    state = tmp_path / "empty.sqlite"
    state.touch()
    result = _run(orders_csv(tmp_path, ["A1", "A2"]), sandbox.env(), "--state", str(state))
    assert result.exit_code == 0, result.stderr
    assert {o: len(p) for o, p in sandbox.payments_by_order().items()} == {"A1": 1, "A2": 1}


def _legacy_run(sandbox: SandboxServer, cwd: Path, source: Path) -> None:
    """What paybatch 0.1 left behind: reports/paybatch.sqlite in the directory it ran from."""
    result = _run(source, sandbox.env(), "--state", str(cwd / LEGACY_STATE_PATH), "-q")
    assert result.exit_code == 0, result.stderr


def test_an_earlier_versions_state_is_used_when_it_belongs_to_this_organization(
    sandbox: SandboxServer, tmp_path: Path, paybatch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = orders_csv(tmp_path, ["A1", "A2"])
    _legacy_run(sandbox, tmp_path, source)
    monkeypatch.chdir(tmp_path)
    result = _run(source, sandbox.env())
    assert result.exit_code == 0, result.stderr
    new_place = default_state(sandbox, paybatch_home).path
    assert "earlier paybatch version" in result.stderr
    assert str(new_place) in result.stderr
    assert f"state: {LEGACY_STATE_PATH}" in result.stderr
    assert _statuses(result, tmp_path) == ["already_created"] * 2
    assert _posts(sandbox) == 2


def test_an_earlier_versions_state_of_another_organization_is_ignored(
    sandbox: SandboxServer, tmp_path: Path, paybatch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    legacy = tmp_path / LEGACY_STATE_PATH
    journal = Journal.open(legacy)
    journal.bind(api_host="other.commercelayer.io", environment="live")
    journal.close()
    monkeypatch.chdir(tmp_path)
    result = _run(orders_csv(tmp_path, ["A1"]), sandbox.env())
    assert result.exit_code == 0, result.stderr
    assert f"ignoring {LEGACY_STATE_PATH}" in result.stderr
    assert "live@other.commercelayer.io" in result.stderr
    assert f"state: {default_state(sandbox, paybatch_home).path}" in result.stderr
    db = sqlite3.connect(legacy)
    assert db.execute("SELECT count(*) FROM payments").fetchone()[0] == 0  # left untouched
    db.close()


def test_reconcile_finds_the_runs_default_state(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _run(orders_csv(tmp_path, ["A1", "A2"]), sandbox.env()).exit_code == 0
    report = tmp_path / "audit.csv"
    result = CliRunner().invoke(main, ["reconcile", "--report", str(report)], env=sandbox.env())
    assert result.exit_code == 0, result.stderr
    assert "2 orders checked, 0 not paid as expected" in result.stderr


def test_a_sandbox_run_ignores_paybatch_state(tmp_path: Path, paybatch_home: Path) -> None:
    """$PAYBATCH_STATE may name the live state file: sandbox payments must never reach it."""
    live = tmp_path / "live.sqlite"
    source = tmp_path / "few.csv"
    lines = (ROOT / "sample_data" / "orders.csv").read_text(encoding="utf-8").splitlines()
    source.write_text("\n".join(lines[:3]) + "\n", encoding="utf-8")
    result = _run(
        source, {"PAYBATCH_STATE": str(live)}, "--sandbox", "--report", str(tmp_path / "r.csv")
    )
    assert result.exit_code == 0, result.stderr
    assert "state: thrown away (sandbox)" in result.stderr
    assert not live.exists()
    assert list(paybatch_home.iterdir()) == []
