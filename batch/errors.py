"""The one exception tree of paybatch.

    PaybatchError                 base; the CLI catches it once and maps `exit_code`
    ├── UsageError                bad option or configuration (exit 2)
    │   └── InsecureURLError      http:// for a non-loopback host
    ├── InputFileError            the input file as a whole is unusable (exit 2)
    ├── FileSystemError           a report, state or summary path cannot be written (exit 2)
    ├── LockHeldError             another run holds the state file's lock (exit 3)
    ├── AuthRefusedError          the API refused our credentials or configuration (exit 4)
    ├── auth.TokenUnavailableError  the token endpoint stayed unreachable (exit 1)
    ├── api.LookupFailedError     a lookup could not be completed (exit 1)
    ├── StateError                the state file is unusable or of another version (exit 2)
    └── InterruptedRun            SIGINT/SIGTERM stopped the run (exit 130 / 143)

Messages never contain secrets: the client secret and bearer tokens are never
formatted into an exception.
"""

from __future__ import annotations


class PaybatchError(Exception):
    """Base class; `exit_code` is what the CLI exits with."""

    exit_code = 2


class UsageError(PaybatchError):
    """A bad option, environment variable or combination of them."""

    exit_code = 2


class InsecureURLError(UsageError):
    """A plain-http URL for a host that is not loopback."""


class InputFileError(PaybatchError):
    """The input file cannot be used at all: unreadable, empty, binary, missing columns."""

    exit_code = 2


class FileSystemError(PaybatchError):
    """A report, state or summary file cannot be written; the message names the path and why."""

    exit_code = 2

    @classmethod
    def wrap(cls, what: str, path: object, exc: OSError) -> FileSystemError:
        """`cannot write the report out/r.csv: No space left on device`."""
        cause = exc.strerror or str(exc) or type(exc).__name__
        return cls(f"cannot write {what} {path}: {cause}")


class StateError(PaybatchError):
    """The state file cannot be opened or belongs to an incompatible version."""

    exit_code = 2


class LockHeldError(PaybatchError):
    """Another run holds the lock on the state file."""

    exit_code = 3


class AuthRefusedError(PaybatchError):
    """The API refused the credentials or the configuration (wrong org, environment, scope)."""

    exit_code = 4


class InterruptedRun(PaybatchError):
    """The run was stopped by a signal; the report was still written."""

    def __init__(self, signal_name: str, exit_code: int) -> None:
        super().__init__(f"interrupted by {signal_name}")
        self.exit_code = exit_code
