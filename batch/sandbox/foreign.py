"""Foreign traffic: another integration on the same IP, spending the class windows."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from aiohttp import web

from batch.sandbox.limits import SlidingWindows
from batch.sandbox.state import SANDBOX
from batch.sandbox.store import Store


async def foreign_traffic(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup context: run the background requests while the app serves."""
    sandbox = app[SANDBOX]
    rate = sandbox.config.foreign_rate
    if rate is None or sandbox.limits is None:
        yield
        return
    task = asyncio.create_task(_spend(sandbox.limits, sandbox.store, rate[1] / rate[0]))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _spend(limits: SlidingWindows, store: Store, interval: float) -> None:
    """One request every `interval` seconds, from now on; a late loop catches up at once."""
    due = time.monotonic()
    while True:
        now = time.monotonic()
        while due <= now:
            store.count_foreign(limits.check_foreign(now))
            due += interval
        await asyncio.sleep(due - now)
