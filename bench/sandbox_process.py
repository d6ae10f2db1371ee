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
class Seen:
    """What the server saw of one paybatch run: every request it made, at arrival."""

    first_at: float  # the run's first request of any kind (the token request, usually)
    last_accepted_at: float  # its last accepted /api/ request
    api_requests: int
    throttled: int
    accepted: list[tuple[float, str]]  # (arrival, endpoint) of each accepted /api/ request
    counted: list[tuple[float, str]]  # what the windows counted: accepted, plus 429s if counted

    @property
    def span(self) -> float:
        return self.last_accepted_at - self.first_at


def endpoint(method: str, path: str) -> str:
    """The sandbox's burst-window key: method and route, ids replaced by {id}."""
    parts = path.rstrip("/").split("/")  # "", "api", collection[, id]
    if len(parts) > 3:
        parts = [*parts[:3], "{id}"]
    return f"{method} {'/'.join(parts)}"


def seen(records: Sequence[dict[str, Any]], *, rejected_count: bool = False) -> Seen:
    """Summarise one run's slice of the request log (the sandbox logs in completion order)."""
    api = [r for r in records if r["path"].startswith("/api/")]
    accepted = sorted((r["at"], endpoint(r["method"], r["path"])) for r in api if r["accepted"])
    refused = [(r["at"], endpoint(r["method"], r["path"])) for r in api if r["status"] == 429]
    counted = sorted(accepted + refused) if rejected_count else accepted
    first = min((r["at"] for r in records), default=0.0)
    last = accepted[-1][0] if accepted else first
    return Seen(first, last, len(api), len(refused), accepted, counted)
