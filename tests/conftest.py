"""Shared fixtures: a real sandbox server on 127.0.0.1, stopped at teardown."""

from __future__ import annotations

import dataclasses
import gc
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from batch.sandbox import SandboxConfig, SandboxServer
from batch.statefile import HOME_VARIABLE, STATE_VARIABLE, StateLocation, locate

SandboxFactory = Callable[..., SandboxServer]


@pytest.fixture(autouse=True)
def paybatch_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test's data directory (state, locks, the send log) is its own, never the user's.

    Subprocesses inherit it through the environment.
    """
    home = tmp_path_factory.mktemp("paybatch-home")
    monkeypatch.setenv(HOME_VARIABLE, str(home))
    monkeypatch.delenv(STATE_VARIABLE, raising=False)
    return home


def default_state(server: SandboxServer, home: Path, environment: str = "test") -> StateLocation:
    """Where a run against `server` keeps its state and lock when --state is not given."""
    return locate(
        api_host=f"{server.host}:{server.port}",
        environment=environment,
        chosen=None,
        directory=home,
    )


@pytest.fixture(autouse=True)
def _no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """paybatch honours HTTP(S)_PROXY: a developer's proxy must never see the tests' traffic."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


@pytest.fixture
def sandbox_factory() -> Iterator[SandboxFactory]:
    """Start sandboxes: `factory(**config_fields)` or `factory(config, **changes)`."""
    servers: list[SandboxServer] = []

    def start(config: SandboxConfig | None = None, **fields: Any) -> SandboxServer:
        if config is None:
            config = SandboxConfig(**fields)
        elif fields:
            config = dataclasses.replace(config, **fields)
        server = SandboxServer(config)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        stop_quietly(server)


def stop_quietly(server: SandboxServer) -> None:
    """Stop a sandbox, collecting the connections a client still held open to it.

    A test may stop the server under a live client on purpose (the API going away): its
    loop then closes with those transports unclosed, and their ResourceWarning would be
    raised in whichever test the garbage collector happens to run next.
    """
    server.stop()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture
def sandbox(sandbox_factory: SandboxFactory) -> SandboxServer:
    """A permissive sandbox: any order id is a pending order, no rate limits at all."""
    return sandbox_factory(open_orders=True, limits=None, token_limit=None)
