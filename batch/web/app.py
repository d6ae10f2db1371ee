"""The page's server: its aiohttp app, and running it on 127.0.0.1 in a thread.

build_app(site)   the middlewares (security first) and the routes
WebServer         the app on a real 127.0.0.1 port, served by its own event loop in a thread
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType

import jinja2
from aiohttp import web

from batch.web import routes
from batch.web.site import TOKEN_TIMEOUT, Site

START_TIMEOUT = 10.0


def build_app(site: Site) -> web.Application:
    app = web.Application(middlewares=[site.guard.middleware, routes.errors_middleware])
    app[routes.SITE] = site
    app[routes.TEMPLATES] = jinja2.Environment(
        loader=jinja2.PackageLoader("batch.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    routes.add_routes(app)
    return app


class WebServer:
    """The page on 127.0.0.1:`port` (0: any free port), in a thread with its own loop."""

    def __init__(self, site: Site, *, port: int = 0) -> None:
        self.site = site
        self.port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        """The address to open, with the access token."""
        return self.site.guard.url

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="paybatch-web", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT + TOKEN_TIMEOUT):
            raise RuntimeError("the web page did not start listening in time")
        if self._failure is not None:
            raise self._failure

    def stop(self) -> None:
        """Stop the run if there is one (its report is written), then stop serving."""
        job = self.site.job
        if job is not None and job.running:
            job.stop()
            job.join()
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(START_TIMEOUT)
        self.site.cleanup()

    def __enter__(self) -> WebServer:
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
        await self.site.learn_environment()
        # access_log=None: the first request's address carries the access token.
        runner = web.AppRunner(build_app(self.site), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self.port = self.site.guard.port = runner.addresses[0][1]
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            self._ready.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()
