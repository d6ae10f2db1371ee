"""What the runner tells the outside world while it works; the core never asks "am I quiet?".

The run core calls `eta` about once a second (it is the progress's timer, so a bar
redraws and a cron line comes even when no row finishes), and `phase` whenever what the
run waits on changes, or its countdown does.
"""

from __future__ import annotations

from typing import Protocol


def rows_text(n: int, word: str = "row") -> str:
    """`1 row`, `12 rows`, `1 unsettled row`."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class Progress(Protocol):
    def start(self, total: int) -> None:
        """The number of data rows in the input."""

    def advance(self, status: str) -> None:
        """One row reached its status for this run."""

    def eta(self, seconds: float) -> None:
        """The least time the rate limits allow for the rows left; about once a second."""

    def phase(self, text: str, detail: str = "") -> None:
        """What the run waits on ("" when it is sending again), e.g. "waiting for the rate
        limit" with the detail "resuming in 6 s"; the detail alone may change each second."""

    def close(self) -> None:
        """The run is over."""


class NullProgress:
    def start(self, total: int) -> None:
        pass

    def advance(self, status: str) -> None:
        pass

    def eta(self, seconds: float) -> None:
        pass

    def phase(self, text: str, detail: str = "") -> None:
        pass

    def close(self) -> None:
        pass
