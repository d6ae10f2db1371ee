"""What the runner tells the outside world while it works; the core never asks "am I quiet?"."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, total: int) -> None:
        """The number of data rows in the input."""

    def advance(self, status: str) -> None:
        """One row reached its status for this run."""

    def eta(self, seconds: float) -> None:
        """The least time the rate limits allow for the rows left."""

    def close(self) -> None:
        """The run is over."""


class NullProgress:
    def start(self, total: int) -> None:
        pass

    def advance(self, status: str) -> None:
        pass

    def eta(self, seconds: float) -> None:
        pass

    def close(self) -> None:
        pass
