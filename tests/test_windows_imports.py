"""Windows-safe: every module of batch imports, and a batch runs, without POSIX-only modules.

Linux cannot become Windows, but a subprocess can lose what Windows lacks: `fcntl`,
`termios`, `resource`, `pwd`, `grp` and `uvloop` become unimportable, and the event loop
refuses `add_signal_handler` as Windows' loops do, so the signal.signal fallback is the
one in use.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from conftest import SandboxFactory
from e2e import FAST, ROOT, cli_env, order_ids, read_report, rows_in_state, write_orders

from batch.sandbox.config import Faults

POSIX_ONLY = ("fcntl", "termios", "resource", "pwd", "grp", "uvloop")

# Prepended to every script below: what a Windows interpreter would lack.
WINDOWS_LIKE = f"""
import importlib.abc, sys

BLOCKED = {POSIX_ONLY!r}
assert not [name for name in BLOCKED if name in sys.modules], "imported at startup"

class NotOnWindows(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"no module named {{name!r}} (as on Windows)", name=name)
        return None

sys.meta_path.insert(0, NotOnWindows())
import asyncio  # the standard library copes: subprocess, for one, runs without fcntl

def no_signal_handlers(self, sig, callback, *args):
    raise NotImplementedError  # what Windows' event loops do

asyncio.AbstractEventLoop.add_signal_handler = no_signal_handlers
asyncio.SelectorEventLoop.add_signal_handler = no_signal_handlers
"""

IMPORT_ALL_AND_RUN = """
import importlib, json, pkgutil, warnings
from pathlib import Path
warnings.simplefilter("ignore")  # filelock says it fell back to its soft lock: it has no fcntl
import batch
names = [m.name for m in pkgutil.walk_packages(batch.__path__, "batch.")]
for name in names:
    if not name.endswith(".__main__"):  # entry points run their command when imported
        importlib.import_module(name)
from batch.cli import main
out = Path(sys.argv[1])
args = ["run", "sample_data/orders.csv", "--sandbox", "--state", str(out / "state.sqlite"),
        "--report", str(out / "report.csv"), "--no-xlsx", "--log-format", "json", "-q"]
try:
    main(args)
except SystemExit as exc:
    code = exc.code
print(json.dumps({"modules": names, "exit_code": code,
                  "posix_loaded": [n for n in BLOCKED if sys.modules.get(n) is not None]}))
"""


def _windows_like(script: str, *args: str) -> list[str]:
    return [sys.executable, "-c", WINDOWS_LIKE + script, *args]


def test_every_module_imports_and_a_batch_runs_without_posix_modules(tmp_path: Path) -> None:
    proc = subprocess.run(
        _windows_like(IMPORT_ALL_AND_RUN, str(tmp_path)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    assert {"batch.lock", "batch.shutdown", "batch.runner", "batch.cli", "batch.api"} <= set(
        result["modules"]
    )
    assert len(result["modules"]) >= 50
    assert result["posix_loaded"] == []
    # The sample has refused rows by design: exit 1, and every valid row paid.
    assert result["exit_code"] == 1, proc.stderr[-3000:]
    lines = read_report(tmp_path / "report.csv")
    created = [line for line in lines if line["status"] == "created"]
    assert len(created) == 46, Counter(line["status"] for line in lines)
    assert all(line["external_payment_id"] for line in created)


SIGNALLED_RUN = """
from batch.cli import main
main(sys.argv[1:])
"""


def _start(args: list[str], server_env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            _windows_like(SIGNALLED_RUN, *args),
            cwd=ROOT,
            env=cli_env(server_env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _args(tmp_path: Path, source: Path, *more: str) -> list[str]:
    state, report = tmp_path / "s.sqlite", tmp_path / "report.csv"
    return ["run", str(source), "--state", str(state), "--report", str(report), *FAST, *more]


def test_ctrl_c_without_loop_signal_handlers_stops_new_sends(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    server = sandbox_factory(
        open_orders=True, limits=None, token_limit=None, faults=Faults(latency_ms=(200, 200))
    )
    source = write_orders(tmp_path / "orders.csv", order_ids(60))
    args = _args(tmp_path, source.path, "--concurrency", "2", "--timeout", "10", "--grace", "10")
    proc = _start(args, server.env(), tmp_path / "run.log")
    try:
        _wait_for(lambda: len(server.payments_by_order()) >= 3, proc, "three payments")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "SIGINT received" in (tmp_path / "run.log").read_text()
    statuses = Counter(line["status"] for line in read_report(tmp_path / "report.csv"))
    assert set(statuses) == {"created", "not_attempted"}, statuses
    assert statuses["created"] == len(server.payments_by_order())


def test_a_second_ctrl_c_without_loop_signal_handlers_leaves_at_once(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    latency = 2.0
    server = sandbox_factory(
        open_orders=True,
        limits=None,
        token_limit=None,
        faults=Faults(latency_ms=(latency * 1000, latency * 1000)),
    )
    source = write_orders(tmp_path / "orders.csv", order_ids(20))
    slow = ("--timeout", "10", "--settle-delay", str(latency + 1), "--grace", "30")
    proc = _start(
        _args(tmp_path, source.path, "--concurrency", "4", *slow),
        server.env(),
        tmp_path / "run.log",
    )
    try:
        _wait_for(
            lambda: rows_in_state(tmp_path / "s.sqlite", "sending") >= 1, proc, "a POST in flight"
        )
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        assert proc.poll() is None  # the first Ctrl-C waits for the requests in flight
        proc.send_signal(signal.SIGINT)
        left = time.monotonic()
        assert proc.wait(30) == 130
        assert time.monotonic() - left < latency  # did not wait for the answers
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
