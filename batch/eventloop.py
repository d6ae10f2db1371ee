"""The event loop every paybatch command runs on: uvloop where it is installed.

uvloop's libuv loop does the socket and timer work of asyncio's pure-Python selector loop
in C; the client spends most of its CPU there and in the HTTP layers above it. Where uvloop
is not available (Windows), asyncio's own loop runs the same code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # Windows: no uvloop
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """`asyncio.run(main)` on the fastest loop available."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(main)
