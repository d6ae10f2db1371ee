"""The web page end to end in a real headless browser (Debian's chromium + chromedriver).

One sandbox, one page server and one browser for the module. A missing browser FAILS
these tests (`make system-packages` installs it); it never skips them. Every screen is
photographed into a `screenshots` folder under the test's temporary directory (or into
$PAYBATCH_SCREENSHOTS when set).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import openpyxl
import pytest
from e2e import order_ids, post_count
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from webpage import messy_xlsx, odd_headers_csv, start_page, two_sheet_xlsx

from batch.sandbox import Faults, SandboxConfig, SandboxServer
from batch.web import WebServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1200,700",
)
ORDERS = order_ids(16, prefix="WEB")
WAIT = 30.0


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("web-browser")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    # Some latency, so a run of 16 rows lasts long enough to watch its counts change.
    config = SandboxConfig(
        open_orders=True, limits=None, token_limit=None, faults=Faults(latency_ms=(250, 400))
    )
    with SandboxServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def page(sandbox: SandboxServer, workdir: Path) -> Iterator[WebServer]:
    server = start_page(sandbox, home=workdir / "home", reports=workdir / "reports")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(workdir: Path) -> Iterator[WebDriver]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"no browser for the web page's tests: {missing}; run `make system-packages`")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={workdir / 'chromium-profile'}")
    downloads = workdir / "downloads"
    downloads.mkdir()
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(WAIT)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shoot(workdir: Path) -> Callable[[WebDriver, str], None]:
    folder = Path(os.environ.get("PAYBATCH_SCREENSHOTS") or workdir / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)

    def take(driver: WebDriver, name: str) -> None:
        # The whole page: grow the window until the viewport holds the document.
        for _ in range(3):
            inner, whole = driver.execute_script(
                "return [window.innerHeight, document.documentElement.scrollHeight]"
            )
            if int(inner) >= int(whole):
                break
            size = driver.get_window_size()
            driver.set_window_size(1200, min(size["height"] + int(whole) - int(inner) + 20, 3000))
        assert driver.save_screenshot(str(folder / f"{name}.png"))
        driver.set_window_size(1200, 700)

    return take


def until(check: Callable[[], object], what: str, timeout: float = WAIT) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except WebDriverException:  # the element went with a reload (stale, not in the document)
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def text_of(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def counts_on(driver: WebDriver) -> dict[str, int]:
    items: list[WebElement] = driver.find_elements(By.CSS_SELECTOR, "#counts li")
    return {
        str(li.get_attribute("data-status")): int(li.find_element(By.TAG_NAME, "b").text)
        for li in items
    }


def upload(driver: WebDriver, page: WebServer, path: Path) -> None:
    driver.get(f"http://127.0.0.1:{page.port}/")
    driver.find_element(By.ID, "file").send_keys(str(path))  # the page submits on change
    try:
        until(lambda: "/check/" in driver.current_url, "the check page")
    except AssertionError:
        raise AssertionError(f"{driver.current_url}: {driver.page_source[:2000]}") from None


def watch_the_run(driver: WebDriver, shoot: Callable[[], None] = lambda: None) -> list[int]:
    """The `done` figures the page showed while the run went on, until it finished.

    `shoot` photographs the page once, the first time it shows rows done.
    """
    seen: list[int] = []

    def finished() -> bool:
        if driver.find_elements(By.ID, "finished"):
            return True
        done = text_of(driver, "done")
        if done.isdigit() and (not seen or seen[-1] != int(done)):
            if int(done) > 0 and not any(seen):
                shoot()
            seen.append(int(done))
        return False

    until(finished, "the run to finish")
    return seen


def test_check_run_watch_download_and_rerun(
    browser: WebDriver,
    page: WebServer,
    sandbox: SandboxServer,
    workdir: Path,
    shoot: Callable[[WebDriver, str], None],
) -> None:
    browser.get(page.url)
    assert "token=" not in browser.current_url  # the cookie carries it from now on
    assert text_of(browser, "environment") == "TEST"
    assert text_of(browser, "organization") == f"127.0.0.1:{sandbox.port}"
    shoot(browser, "1-upload")

    messy = messy_xlsx(workdir / "november.xlsx", ORDERS)
    upload(browser, page, messy)
    assert text_of(browser, "environment") == "TEST"
    shoot(browser, "2-check")
    assert counts_on(browser) == {"duplicate": 1, "invalid": 1, "valid": 15}
    refused = [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in browser.find_elements(By.CSS_SELECTOR, "#refused tr")[1:]
    ]
    # The spreadsheet's own row numbers: the title is row 1, the header row 2.
    assert [(r[0], r[1], r[2]) for r in refused] == [
        ("4", ORDERS[1], "invalid"),
        ("19", ORDERS[0], "duplicate"),
    ]
    assert "INVISIBLE" in refused[0][3]
    button = browser.find_element(By.ID, "run")
    assert (
        button.text == f"Create 15 external payments in TEST organization 127.0.0.1:{sandbox.port}"
    )
    assert post_count(sandbox) == 0  # the check sends nothing

    button.click()
    until(lambda: browser.current_url.endswith("/run"), "the run page")
    seen = watch_the_run(browser, lambda: shoot(browser, "3-running"))
    assert len(seen) >= 2, f"the counts never changed on the page: {seen}"
    assert seen == sorted(seen)
    shoot(browser, "4-finished")
    assert counts_on(browser) == {"created": 15, "duplicate": 1, "invalid": 1}
    assert "exit code 1" in text_of(browser, "finished")
    assert post_count(sandbox) == 15

    browser.find_element(By.ID, "download-xlsx").click()
    xlsx = until(lambda: next((workdir / "downloads").glob("november-*.xlsx"), None), "the XLSX")
    assert isinstance(xlsx, Path)
    time.sleep(0.2)  # Chrome renames the finished download into place
    book = openpyxl.load_workbook(xlsx, read_only=True)
    sheet = book["Rows"]
    rows = list(sheet.iter_rows(values_only=True))
    header = [str(h) for h in rows[0]]
    statuses = [row[header.index("status")] for row in rows[1:] if row[0] is not None]
    assert sorted(statuses) == sorted(["created"] * 15 + ["invalid", "duplicate"])
    book.close()

    browser.find_element(By.ID, "rerun").click()
    until(lambda: browser.current_url.endswith("/run"), "the second run")
    watch_the_run(browser)
    assert counts_on(browser) == {"already_created": 15, "duplicate": 1, "invalid": 1}
    assert post_count(sandbox) == 15  # nothing sent twice
    shoot(browser, "5-rerun")

    browser.get(f"http://127.0.0.1:{page.port}/")
    runs = browser.find_elements(By.CSS_SELECTOR, "#runs tr")[1:]
    assert len(runs) == 2
    assert all("november.xlsx" in row.text for row in runs)
    assert all(row.find_elements(By.LINK_TEXT, "xlsx") for row in runs)
    shoot(browser, "6-past-runs")


def test_pick_the_sheet_and_map_the_columns(
    browser: WebDriver, page: WebServer, workdir: Path, shoot: Callable[[WebDriver, str], None]
) -> None:
    upload(browser, page, two_sheet_xlsx(workdir / "two-sheets.xlsx", ORDERS[:3]))
    assert "choose one with --sheet" in text_of(browser, "problem")
    shoot(browser, "7-pick-sheet")
    choices = [o.text for o in browser.find_elements(By.CSS_SELECTOR, "#sheet option")]
    assert choices == ["October", "November"]
    browser.find_element(By.CSS_SELECTOR, "#sheet option:nth-child(2)").click()
    browser.find_element(By.ID, "recheck").click()
    until(lambda: browser.find_elements(By.ID, "counts"), "the re-check")
    assert "sheet November" in browser.find_element(By.TAG_NAME, "main").text
    # The first test's run paid these but the one with the zero-width space; the server
    # check says so before any send.
    assert counts_on(browser) == {"already_created": 2, "valid": 1}

    upload(browser, page, odd_headers_csv(workdir / "odd.csv", ORDERS[:2]))
    assert "missing required column" in text_of(browser, "problem")
    shoot(browser, "8-map-columns")
    order_field = browser.find_element(By.ID, "column_order_id")
    token_field = browser.find_element(By.ID, "column_payment_source_token")
    assert token_field.get_attribute("value") == "Token"  # the CLI's own suggestion
    order_field.clear()
    order_field.send_keys("Order Ref")
    browser.find_element(By.ID, "recheck").click()
    until(lambda: browser.find_elements(By.ID, "counts"), "the re-check")
    assert counts_on(browser) == {"already_created": 1, "valid": 1}


def test_screenshots_were_taken(workdir: Path) -> None:
    folder = Path(os.environ.get("PAYBATCH_SCREENSHOTS") or workdir / "screenshots")
    shots = sorted(p.name for p in folder.glob("*.png"))
    assert len(shots) >= 8, shots
    assert all(p.stat().st_size > 10_000 for p in folder.glob("*.png"))
    shutil.rmtree(workdir / "chromium-profile", ignore_errors=True)
