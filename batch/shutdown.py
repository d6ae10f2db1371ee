"""SIGINT/SIGTERM: the first one stops new sends; a second one leaves at once.

The handlers go on the running loop where it can take them (Unix). Windows' loops cannot
(`add_signal_handler` raises NotImplementedError), so there a plain `signal.signal`
handler hands the signal to the loop, and the previous handler comes back on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from types import FrameType, TracebackType
from typing import Any

log = logging.getLogger(__name__)

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Shutdown:
    """Install the handlers on the running loop; `stopping` is set by the first signal.

    `stopping` may be given: another stop (the web page's Stop button) then sets it too.
    """

    def __init__(self, stopping: asyncio.Event | None = None) -> None:
        self.stopping = stopping if stopping is not None else asyncio.Event()
        self.signal: signal.Signals | None = None
        self._installed: list[signal.Signals] = []
        self._previous: dict[signal.Signals, Any] = {}

    def request(self, sig: signal.Signals) -> None:
        if self.signal is not None:
            log.warning("second %s: leaving now; the state file stays consistent", sig.name)
            os._exit(EXIT_CODES.get(sig, 130))
        self.signal = sig
        log.warning("%s received: no new sends, finishing the requests in flight", sig.name)
        self.stopping.set()

    @property
    def exit_code(self) -> int | None:
        return EXIT_CODES.get(self.signal) if self.signal is not None else None

    def __enter__(self) -> Shutdown:
        loop = asyncio.get_running_loop()
        for sig in EXIT_CODES:
            try:
                loop.add_signal_handler(sig, self.request, sig)
            except NotImplementedError:
                self._install_plain(loop, sig)
            except (RuntimeError, ValueError):
                continue  # not the main thread (e.g. under a test runner's thread)
            else:
                self._installed.append(sig)
        return self

    def _install_plain(self, loop: asyncio.AbstractEventLoop, sig: signal.Signals) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            loop.call_soon_threadsafe(self.request, signal.Signals(signum))

        with contextlib.suppress(ValueError):  # not the main thread
            self._previous[sig] = signal.signal(sig, handler)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._installed:
            loop.remove_signal_handler(sig)
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
