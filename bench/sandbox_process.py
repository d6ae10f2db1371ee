"""The sandbox in its own process, for benchmarks: start it, read its request log, stop it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

CREATE_PATH = "/api/external_payments"


@dataclass(frozen=True)
class Sandbox:
    """A running sandbox process: where it listens and the env that points paybatch at it."""

    base_url: str
    env: dict[str, str]

    def requests(self) -> list[dict[str, Any]]:
        """The server's request log: method, path, status, arrival time `at`, accepted."""
        answer = httpx.get(self.base_url + "/_sandbox/requests", timeout=60.0, trust_env=False)
        answer.raise_for_status()
        records: list[dict[str, Any]] = answer.json()["requests"]
        return records

    def payments_by_order(self) -> dict[str, list[dict[str, Any]]]:
        """Every payment the server holds, by order id (to check for duplicates)."""
        answer = httpx.get(self.base_url + "/_sandbox/payments", timeout=60.0, trust_env=False)
        answer.raise_for_status()
        found: dict[str, list[dict[str, Any]]] = answer.json()["payments_by_order"]
        return found


@contextmanager
def sandbox(args: Sequence[str]) -> Iterator[Sandbox]:
    """Run `python -m batch.sandbox --port 0 --open-orders --no-token-limit ARGS` until exit."""
    command = [sys.executable, "-m", "batch.sandbox", "--port", "0", "--open-orders"]
    command += ["--no-token-limit", *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the sandbox did not start: {' '.join(command)}")
        described = json.loads(line)
        yield Sandbox(described["base_url"], dict(described["env"]))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class Writes:
    """What the server saw of the create requests of one case."""

    posts: int
    accepted: int
    throttled: int
    first_to_last: float  # seconds between the first and the last accepted arrival
    first_at: float
    last_at: float


def writes(records: Sequence[dict[str, Any]]) -> Writes:
    """Count the POSTs to /api/external_payments and time the accepted ones, at arrival."""
    posts = [r for r in records if r["method"] == "POST" and r["path"] == CREATE_PATH]
    accepted = sorted(r["at"] for r in posts if r["accepted"] and r["status"] == 201)
    throttled = sum(1 for r in posts if r["status"] == 429)
    span = accepted[-1] - accepted[0] if len(accepted) > 1 else 0.0
    first = accepted[0] if accepted else 0.0
    last = accepted[-1] if accepted else 0.0
    return Writes(len(posts), len(accepted), throttled, span, first, last)
