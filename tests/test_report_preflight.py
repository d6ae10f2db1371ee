"""Before the first POST: writable paths, the live prompt; and runs that end oddly still report."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import SandboxFactory
from e2e import ROOT, cli_env, orders_csv, post_count, read_report, rows_in_state, start_cli

from batch.cli import main
from batch.report import _csv, _paths
from batch.sandbox import SandboxServer

FAST = ("--rate-limit", "1000/1s", "--log-format", "text", "--no-progress")


def _run(server: SandboxServer, tmp_path: Path, *args: str) -> Result:
    source = orders_csv(tmp_path, ["A1", "A2", "A3"])
    state = str(tmp_path / "out" / "state.sqlite")
    return CliRunner().invoke(
        main, ["run", str(source), "--state", state, *FAST, *args], env=server.env()
    )


def _one_error_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "where",
    [
        "a-file/x.csv",  # a file where a directory is expected
        "reports-dir",  # a directory where the report is expected (x.xlsx inside exists)
    ],
)
def test_a_bad_report_path_sends_nothing(
    sandbox: SandboxServer, tmp_path: Path, where: str
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    (tmp_path / "reports-dir.xlsx").mkdir()
    result = _run(sandbox, tmp_path, "--report", str(tmp_path / where))
    line = _one_error_line(result)
    assert "cannot write the report" in line
    assert str(tmp_path) in line
    assert post_count(sandbox) == 0


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_report_under_proc_sends_nothing(sandbox: SandboxServer, tmp_path: Path) -> None:
    line = _one_error_line(_run(sandbox, tmp_path, "--report", "/proc/x.csv"))
    assert "/proc/x.csv" in line
    assert post_count(sandbox) == 0


def test_a_read_only_state_directory_is_one_line_and_sends_nothing(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root ignores permission bits, so the read-only filesystem is a fake at the probe.
    real_mkstemp = _paths.tempfile.mkstemp
    state_dir = tmp_path / "ro"

    def mkstemp(*args: object, dir: Path, **kwargs: object) -> tuple[int, str]:
        if Path(dir) == state_dir:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_mkstemp(*args, dir=dir, **kwargs)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setattr(_paths.tempfile, "mkstemp", mkstemp)
    source = orders_csv(tmp_path, ["A1"])
    args = ["run", str(source), "--state", str(state_dir / "s.sqlite"), *FAST]
    result = CliRunner().invoke(main, args, env=sandbox.env())
    line = _one_error_line(result)
    assert f"cannot write the state file {state_dir / 's.sqlite'}: Read-only file system" in line
    assert post_count(sandbox) == 0


def test_a_full_disk_while_writing_the_report_is_one_line_exit_2(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(self: object, cells: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(_csv.CsvReport, "write", full)
    report = tmp_path / "out" / "r.csv"
    line = _one_error_line(_run(sandbox, tmp_path, "--report", str(report)))
    assert line.endswith(f"cannot write the report {report}: No space left on device")
    assert not report.exists()
    # The payments are in the state file; the rerun writes the report without sending.
    monkeypatch.undo()
    again = _run(sandbox, tmp_path, "--report", str(report))
    assert again.exit_code == 0, again.output
    assert [line["status"] for line in read_report(report)] == ["already_created"] * 3


def test_report_ending_in_xlsx_gets_the_xlsx_and_the_csv_beside_it(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = _run(sandbox, tmp_path, "--report", str(tmp_path / "out" / "r.XLSX"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "r.XLSX").read_bytes()[:2] == b"PK"
    assert len(read_report(tmp_path / "out" / "r.csv")) == 3
    assert (tmp_path / "out" / "r-errors.csv").exists()


def test_stale_staging_directories_are_removed_by_the_next_run(tmp_path: Path) -> None:
    reports = tmp_path / "out"
    stale, fresh = reports / ".paybatch-killed", reports / ".paybatch-writing"
    for directory in (stale, fresh):
        directory.mkdir(parents=True)
        (directory / "report.csv").write_text("half")
    old = time.time() - 3600
    for path in (stale / "report.csv", stale):
        os.utime(path, (old, old))
    source = orders_csv(tmp_path, ["A1"])
    result = CliRunner().invoke(main, ["validate", str(source), "--report", str(reports / "v.csv")])
    assert result.exit_code == 0, result.output
    assert not stale.exists()
    assert fresh.exists()  # another writer may still be busy with it


def test_a_report_killed_mid_write_leaves_staging_that_the_next_run_removes(
    tmp_path: Path,
) -> None:
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from batch.report import ReportWriter\n"
        "from batch.rows import ReportRow, RowStatus\n"
        "w = ReportWriter(Path(sys.argv[1]), extra_headers=[])\n"
        "w.write(ReportRow(row=2, order_id='o', status=RowStatus.CREATED,"
        " payment_source_token='t'))\n"
        "os._exit(9)\n"
    )
    report = tmp_path / "out" / "r.csv"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script, str(report)], env=env, timeout=30, check=False
    )
    assert done.returncode == 9
    [left] = report.parent.iterdir()
    assert left.name.startswith(".paybatch-")
    assert _paths.remove_stale_staging(report.parent) == []  # just written: may be alive
    later = time.time() + _paths.STALE_AFTER_S + 1
    assert _paths.remove_stale_staging(report.parent, now=later) == [left]
    assert list(report.parent.iterdir()) == []


@pytest.mark.slow
def test_input_changed_mid_run_still_writes_a_report_from_the_state_file(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    server = sandbox_factory(open_orders=True, limits=None, token_limit=None)
    ids = [f"ORD{n:03d}" for n in range(60)]
    source = orders_csv(tmp_path, ids)
    out = tmp_path / "out"
    args = ["run", str(source), "--state", str(out / "s.sqlite"), "--report", str(out / "r.csv")]
    args += ["--rate-limit", "20/1s", "--log-format", "text", "--no-progress"]
    proc = start_cli(args, cli_env(server.env()), tmp_path / "log.txt")
    deadline = time.monotonic() + 30
    while rows_in_state(out / "s.sqlite", "created") < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    with source.open("a", encoding="utf-8") as f:
        f.write("ORD999,tok_late_9999\n")  # someone saves the file while it is being paid
    assert proc.wait(timeout=60) == 2
    log = (tmp_path / "log.txt").read_text("utf-8")
    assert "Traceback" not in log
    assert "changed" in log
    lines = read_report(out / "r.csv")
    created = [line for line in lines if line["status"] == "created"]
    assert len(created) == len(server.payments_by_order()) >= 5
    assert {line["order_id"] for line in created} == set(server.payments_by_order())
    assert "ORD999" not in {line["order_id"] for line in lines}
    import openpyxl

    summary = openpyxl.load_workbook(out / "r.xlsx")["Summary"]
    notes = [b for a, b, *_ in summary.iter_rows(values_only=True) if a == "Note"]
    assert len(notes) == 1
    assert "built from the state file" in str(notes[0])


def test_a_report_that_would_replace_the_input_file_is_refused(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    source = orders_csv(tmp_path, ["A1"])
    before = source.read_bytes()
    args = ["run", str(source), "--state", str(tmp_path / "s.sqlite"), "--report", str(source)]
    result = CliRunner().invoke(main, [*args, *FAST], env=sandbox.env())
    assert f"cannot write the report {source}: it is the input file" in _one_error_line(result)
    assert source.read_bytes() == before
    assert post_count(sandbox) == 0
