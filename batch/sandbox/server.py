"""Running the sandbox: in a background thread (tests) or in the foreground until a signal."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

from aiohttp import web

from batch.sandbox.app import build_app
from batch.sandbox.config import PaymentMethodKind, SandboxConfig
from batch.sandbox.state import new_sandbox
from batch.sandbox.store import Order, Payment, RequestRecord

DEFAULT_CONFIG = SandboxConfig()
START_TIMEOUT = 10.0
# A late (p_late) response still sleeping at shutdown is cut off after this long.
SHUTDOWN_TIMEOUT = 1.0


class SandboxServer:
    """The sandbox on a real 127.0.0.1 port, served by its own event loop in a thread."""

    def __init__(
        self, config: SandboxConfig = DEFAULT_CONFIG, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config
        self.host = host
        self.port = port
        self.client_id = config.client_id
        self.client_secret = config.client_secret
        self.sandbox = new_sandbox(config)
        self.store = self.sandbox.store
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    @property
    def base_url(self) -> str:
        """Where the API lives, e.g. http://127.0.0.1:PORT."""
        return f"http://{self.host}:{self.port}"

    @property
    def auth_url(self) -> str:
        """The token endpoint."""
        return f"{self.base_url}/oauth/token"

    def env(self) -> dict[str, str]:
        """The environment variables that point paybatch at this sandbox."""
        return {
            "CL_BASE_URL": self.base_url,
            "CL_AUTH_URL": self.auth_url,
            "CL_CLIENT_ID": self.client_id,
            "CL_CLIENT_SECRET": self.client_secret,
        }

    def describe(self) -> dict[str, Any]:
        """What a parent process needs: URLs, environment, mode and pid."""
        return {
            "base_url": self.base_url,
            "auth_url": self.auth_url,
            "mode": self.config.mode,
            "pid": os.getpid(),
            "env": self.env(),
        }

    def payments_by_order(self, *, seeded: bool = False) -> dict[str, list[dict[str, Any]]]:
        """Every payment created through the API so far (plus the seeded ones if asked),
        grouped by order id."""
        return self.store.payments_by_order(seeded=seeded)

    def payments_of(self, order_id: str) -> list[Payment]:
        """Every external payment the server holds for one order, seeded and orphans too."""
        return self.store.payments_of(order_id)

    def add_order(
        self,
        order_id: str,
        *,
        number: str | None = None,
        status: str = "pending",
        payment_method: PaymentMethodKind = "external",
        payment_source: str = "",
    ) -> Order:
        """Seed one order while serving (see OrderSeed for `payment_source`)."""
        return self.store.add_order(
            order_id,
            number=number,
            status=status,
            payment_method=payment_method,
            payment_source=payment_source,
        )

    def request_log(self) -> list[RequestRecord]:
        """Every answered or dropped request so far."""
        return self.store.requests()

    def start(self) -> None:
        """Bind the port and serve in the background; returns once listening."""
        if self._thread is not None:
            raise RuntimeError("this sandbox server was already started")
        self._thread = threading.Thread(target=self._run, name="paybatch-sandbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError("the sandbox did not start listening in time")
        if isinstance(self._failure, OSError):
            raise self._failure  # a busy port or an address it cannot bind: the caller words it
        if self._failure is not None:
            raise RuntimeError(f"the sandbox failed to start: {self._failure}") from self._failure

    def stop(self) -> None:
        """Stop serving and wait for the thread; safe to call twice."""
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if loop is not None and stopping is not None and not loop.is_closed():
            # The loop may close between the check and the call; then it has stopped anyway.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        if thread is not None:
            thread.join(START_TIMEOUT)

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start(); a thread has nobody else to tell
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        # access_log=None: URLs can carry token filters, and the sandbox logs nothing secret.
        runner = web.AppRunner(
            build_app(self.sandbox), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            self.port = runner.addresses[0][1]
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            self._ready.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()


def serve(
    config: SandboxConfig = DEFAULT_CONFIG,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    on_ready: Callable[[SandboxServer], None] | None = None,
) -> None:
    """Serve in the foreground until SIGINT or SIGTERM; `on_ready` runs once listening.

    Call from the main thread (signal handlers can only be installed there).
    """
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with SandboxServer(config, host=host, port=port) as server:
            if on_ready is not None:
                on_ready(server)
            stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
