"""The page's runs over plain HTTP against the sandbox: LIVE asks twice, Stop, the lock,
a crash shown as one sentence, downloads only of known reports, one run for every tab."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import SandboxFactory, default_state
from e2e import order_ids, post_count
from webpage import csrf_of, orders_body, session, start_page, upload_csv, wait_for_the_run

from batch.lock import StateLock
from batch.sandbox import Faults, SandboxServer
from batch.web import WebServer
from batch.web.jobs import PageProgress


@pytest.fixture
def pages(tmp_path: Path) -> Iterator[list[WebServer]]:
    started: list[WebServer] = []
    yield started
    for server in started:
        server.stop()


def open_page(pages: list[WebServer], sandbox: SandboxServer | None, tmp_path: Path) -> WebServer:
    server = start_page(sandbox, home=tmp_path / "home", reports=tmp_path / "reports")
    pages.append(server)
    return server


def check(http: httpx.Client, orders: list[str]) -> str:
    """Upload the orders; the upload's id."""
    answer = upload_csv(http, "orders.csv", orders_body(orders))
    assert answer.status_code == 200, answer.text
    return answer.url.path.rsplit("/", 1)[1]


def test_live_asks_once_more_before_sending(
    sandbox_factory: SandboxFactory, pages: list[WebServer], tmp_path: Path
) -> None:
    live = sandbox_factory(mode="live", open_orders=True, limits=None, token_limit=None)
    page = open_page(pages, live, tmp_path)
    with session(page) as http:
        home = http.get("/").text
        assert 'class="env env-live"' in home
        upload = check(http, order_ids(3))
        button = http.get(f"/check/{upload}").text
        assert "Create 3 external payments in LIVE organization" in button
        asked = http.post(f"/run/{upload}", data={"csrf": csrf_of(http)})
        assert asked.status_code == 200
        assert "This is the LIVE organization" in asked.text
        assert page.site.job is None
        assert post_count(live) == 0
        confirmed = http.post(f"/run/{upload}", data={"csrf": csrf_of(http), "confirm_live": "yes"})
        assert confirmed.status_code == 303
        status = wait_for_the_run(http)
    assert status["counts"] == {"created": 3}
    assert post_count(live) == 3


def test_stop_leaves_the_rest_not_attempted_and_writes_the_report(
    sandbox_factory: SandboxFactory, pages: list[WebServer], tmp_path: Path
) -> None:
    slow = sandbox_factory(
        open_orders=True, limits=None, token_limit=None, faults=Faults(latency_ms=(300, 300))
    )
    page = open_page(pages, slow, tmp_path)
    orders = order_ids(60)
    with session(page) as http, session(page) as other_tab:
        upload = check(http, orders)
        assert http.post(f"/run/{upload}", data={"csrf": csrf_of(http)}).status_code == 303
        # The job is global to the server: a second tab sees the same run, and cannot start another.
        assert other_tab.get("/status").json()["running"] is True
        again = other_tab.post(f"/run/{upload}", data={"csrf": csrf_of(other_tab)})
        assert again.headers["location"] == "/run"
        assert http.post("/stop", data={"csrf": csrf_of(http)}).status_code == 303
        status = wait_for_the_run(http)
        assert status["counts"].get("not_attempted", 0) > 0
        assert "stopped from the page" in status["message"]
        assert set(status["downloads"]) == {"csv", "xlsx", "errors"}
        report = http.get(status["downloads"]["csv"])
        assert report.status_code == 200
        assert report.text.count("not_attempted") == status["counts"]["not_attempted"]
    assert post_count(slow) < len(orders)


def test_a_run_holding_the_lock_is_named_with_the_clis_message(
    sandbox: SandboxServer, pages: list[WebServer], tmp_path: Path
) -> None:
    page = open_page(pages, sandbox, tmp_path)
    where = default_state(sandbox, tmp_path / "home")
    with session(page) as http, StateLock(where.lock_path):
        upload = check(http, order_ids(2))
        http.post(f"/run/{upload}", data={"csrf": csrf_of(http)})
        status = wait_for_the_run(http)
        shown = http.get("/run").text
    assert status["exit_code"] == 3
    assert status["message"].startswith("paybatch: error: another paybatch run holds")
    assert "another paybatch run holds" in shown
    assert post_count(sandbox) == 0


def test_a_crash_is_one_sentence_never_a_traceback(
    sandbox: SandboxServer,
    pages: list[WebServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    page = open_page(pages, sandbox, tmp_path)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug with a secret-looking detail")

    with session(page) as http:
        upload = check(http, order_ids(2))
        monkeypatch.setattr("batch.web.routes.check_upload", broken)
        answer = upload_csv(http, "orders.csv", orders_body(order_ids(2)))
        assert answer.status_code == 500
        assert "something went wrong; see the log" in answer.text
        assert "Traceback" not in answer.text
        assert "RuntimeError" not in answer.text
        monkeypatch.setattr("batch.web.jobs.run_payments", broken)
        http.post(f"/run/{upload}", data={"csrf": csrf_of(http)})
        status = wait_for_the_run(http)
    assert status["message"].startswith("something went wrong")
    assert "Traceback" not in status["message"]
    assert "a bug with a secret-looking detail" in caplog.text  # the log has it all


def test_without_credentials_the_page_checks_offline_and_cannot_run(
    pages: list[WebServer], tmp_path: Path
) -> None:
    page = open_page(pages, None, tmp_path)
    with session(page) as http:
        upload = check(http, order_ids(2))
        shown = http.get(f"/check/{upload}").text
        assert "Checked offline only (no credentials)" in shown
        assert 'id="run"' not in shown
        refused = http.post(f"/run/{upload}", data={"csrf": csrf_of(http)})
        assert refused.status_code == 400
        assert "missing environment variable(s)" in refused.text


def test_only_known_reports_are_served(
    sandbox: SandboxServer, pages: list[WebServer], tmp_path: Path
) -> None:
    page = open_page(pages, sandbox, tmp_path)
    with session(page) as http:
        upload = check(http, order_ids(2))
        assert http.get(f"/download/check-{upload}/csv").status_code == 200
        for path in (
            f"/download/check-{upload}/summary",
            "/download/check-nope/csv",
            "/download/..%2F..%2Fetc%2Fpasswd/csv",
            f"/download/check-{upload}/..%2F..%2Fetc%2Fpasswd",
        ):
            assert http.get(path).status_code == 404, path


def test_a_file_level_problem_has_the_clis_words(pages: list[WebServer], tmp_path: Path) -> None:
    page = open_page(pages, None, tmp_path)
    with session(page) as http:
        empty = upload_csv(http, "empty.csv", b"")
    assert "paybatch: error: empty.csv: the file is empty (no header row)" in empty.text


def test_progress_phases_and_eta() -> None:
    now = [0.0]
    progress = PageProgress(clock=lambda: now[0])
    assert progress.snapshot()["phase"].startswith("checking with the server")
    progress.start(4)
    progress.eta(1.0)
    progress.advance("created")
    now[0] = 2.0
    shown = progress.snapshot()
    assert (shown["phase"], shown["done"], shown["total"]) == ("sending", 1, 4)
    assert shown["eta_seconds"] == 6.0  # the pace seen so far, above the rate limits' 1 s
    assert shown["limit_eta_seconds"] == 1.0
    for _ in range(3):
        progress.advance("failed")
    assert progress.snapshot()["phase"] == "writing the report"
    progress.close()
    assert progress.snapshot() == {
        "phase": "finished",
        "total": 4,
        "done": 4,
        "counts": {"created": 1, "failed": 3},
        "eta_seconds": None,
        "limit_eta_seconds": None,
    }
