"""SIGINT/SIGTERM: the first one stops new sends; a second one leaves at once."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from types import TracebackType

log = logging.getLogger(__name__)

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Shutdown:
    """Install the handlers on the running loop; `stopping` is set by the first signal."""

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self.signal: signal.Signals | None = None
        self._installed: list[signal.Signals] = []

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
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # not the main thread (e.g. under a test runner's thread)
            self._installed.append(sig)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._installed:
            loop.remove_signal_handler(sig)
