"""Shared fixtures: a real sandbox server on 127.0.0.1, stopped at teardown."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from batch.sandbox import SandboxConfig, SandboxServer

SandboxFactory = Callable[..., SandboxServer]


@pytest.fixture(autouse=True)
def paybatch_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test's data directory (the send log) is its own, never the user's.

    Subprocesses inherit it through the environment.
    """
    home = tmp_path_factory.mktemp("paybatch-home")
    monkeypatch.setenv("PAYBATCH_HOME", str(home))
    return home


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
        server.stop()


@pytest.fixture
def sandbox(sandbox_factory: SandboxFactory) -> SandboxServer:
    """A permissive sandbox: any order id is a pending order, no rate limits at all."""
    return sandbox_factory(open_orders=True, limits=None, token_limit=None)
