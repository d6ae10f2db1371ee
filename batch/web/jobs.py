"""The page's one run at a time: `run_payments` in a thread with its own event loop.

PageProgress   the Progress the run reports to; the page reads snapshots of it
RunJob         one run: start(), stop() (the Stop button, like a first Ctrl-C), status()

The CLI's state lock still applies inside the run, so a `paybatch run` in a terminal and
the page never work one organization at once; the job is global to the server, so every
tab sees the same run.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batch.config import ApiConfig, RunOptions
from batch.errors import PaybatchError
from batch.logs import register_secret
from batch.report import ReportPaths
from batch.runner import RunResult, new_run_id, run_payments

log = logging.getLogger(__name__)


class PageProgress:
    """Counts by status and the ETA, written by the run's thread, read by the page's."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._total: int | None = None
        self._limit_eta = 0.0
        self._started = 0.0
        self._closed = False
        self._phase = ""  # what the run waits on, from the run core ("" when sending)

    def start(self, total: int) -> None:
        with self._lock:
            self._total, self._started = total, self._clock()

    def advance(self, status: str) -> None:
        with self._lock:
            self._counts[status] += 1

    def eta(self, seconds: float) -> None:
        with self._lock:
            self._limit_eta = seconds

    def phase(self, text: str, detail: str = "") -> None:
        with self._lock:
            self._phase = f"{text}, {detail}" if text and detail else text

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            done = sum(self._counts.values())
            total = self._total
            if total is None:
                phase = "checking with the server (the preflight)"
            elif self._closed:
                phase = "finished"
            elif done >= total:
                phase = "writing the report"
            else:
                phase = self._phase or "sending"
            eta = None
            if total is not None and not self._closed:
                elapsed = self._clock() - self._started
                pace = elapsed / done * (total - done) if done else 0.0
                # The rate limits bound it from below; the pace seen so far is the honest guess.
                eta = round(max(self._limit_eta, pace), 1)
            return {
                "phase": phase,
                "total": total,
                "done": done,
                "counts": dict(sorted(self._counts.items())),
                "eta_seconds": eta,
                "limit_eta_seconds": round(self._limit_eta, 1) if eta is not None else None,
            }


@dataclass(frozen=True)
class Outcome:
    """How a run ended, in the page's words."""

    exit_code: int
    message: str
    paths: ReportPaths | None = None
    counts: dict[str, int] | None = None


class RunJob:
    """One `paybatch run` started from the page."""

    def __init__(
        self, options: RunOptions, api_config: ApiConfig, *, input_name: str, upload_id: str
    ) -> None:
        self.options = options
        self.input_name = input_name
        self.upload_id = upload_id  # the page's file, for "Run it again"
        self.run_id = new_run_id(datetime.now(UTC))
        self.progress = PageProgress()
        self.outcome: Outcome | None = None
        self._api_config = api_config
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_asked = False
        self._guard = threading.Lock()
        self._thread = threading.Thread(target=self._main, name="paybatch-web-run", daemon=True)

    @property
    def running(self) -> bool:
        return self.outcome is None

    @property
    def stop_asked(self) -> bool:
        return self._stop_asked

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def stop(self) -> None:
        """No new sends; the requests in flight finish and the report is written."""
        with self._guard:
            self._stop_asked = True
            if self._loop is not None and self._stop is not None:
                self._loop.call_soon_threadsafe(self._stop.set)

    def _main(self) -> None:
        try:
            result = asyncio.run(self._run())
        except PaybatchError as exc:  # before the run started: lock held, bad file, ...
            self.outcome = Outcome(exc.exit_code, f"paybatch: error: {exc}")
        except Exception:
            log.exception("the run from the web page crashed")
            report = self.options.report_path
            where = f"the report is at {report}" if report and report.exists() else "see the log"
            self.outcome = Outcome(1, f"something went wrong; {where}")
        else:
            message = result.message
            if self._stop_asked and not message:
                message = "stopped from the page: rows not reached are not_attempted"
            self.outcome = Outcome(result.exit_code, message, result.paths, result.counts)
        log.info("web run over", extra={"exit_code": self.outcome.exit_code})

    async def _run(self) -> RunResult:
        with self._guard:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            if self._stop_asked:
                self._stop.set()
        return await run_payments(
            self.options,
            self._api_config,
            progress=self.progress,
            on_secret=register_secret,
            run_id=self.run_id,
            stop=self._stop,
        )

    def status(self) -> dict[str, Any]:
        """What the page's script polls: progress, and the outcome once there is one."""
        status = self.progress.snapshot()
        status["run_id"] = self.run_id
        status["input"] = self.input_name
        status["running"] = self.running
        status["stop_asked"] = self._stop_asked
        if self.outcome is not None:
            status["phase"] = "finished"
            status["eta_seconds"] = status["limit_eta_seconds"] = None
            status["exit_code"] = self.outcome.exit_code
            status["message"] = self.outcome.message
            if self.outcome.counts is not None:
                status["counts"] = dict(sorted(self.outcome.counts.items()))
            status["downloads"] = downloads(self.run_id, self.outcome.paths)
        return status


def downloads(key: str, paths: ReportPaths | None) -> dict[str, str]:
    """The download links of a report's files that exist, by kind."""
    if paths is None:
        return {}
    files: dict[str, Path | None] = {"csv": paths.csv, "xlsx": paths.xlsx, "errors": paths.errors}
    return {
        kind: f"/download/{key}/{kind}"
        for kind, path in files.items()
        if path is not None and path.exists()
    }
