"""The one exception tree of paybatch, and the exit codes it maps to.

    PaybatchError                 base; the CLI catches it once and maps `exit_code`
    ├── UsageError                bad option or configuration (exit 2)
    │   └── InsecureURLError      http:// for a non-loopback host
    ├── InputFileError            the input file as a whole is unusable (exit 2)
    ├── FileSystemError           a report, state or summary path cannot be written (exit 2)
    ├── LockHeldError             another run works this organization and environment (exit 3)
    ├── AuthRefusedError          the API refused our credentials or configuration (exit 4)
    ├── ApiUnreachableError       the API or the token endpoint could not be reached (exit 5)
    ├── auth.TokenUnavailableError  the token endpoint answered nonsense, after retries (exit 1)
    │   └── auth.TokenEndpointUnreachableError  ...could not be reached (exit 5; also an
    │                                           ApiUnreachableError)
    ├── api.LookupFailedError     a lookup could not be completed (exit 1)
    ├── StateError                the state file is unusable or of a newer version (exit 2)
    ├── DeadlineReached           --max-duration / --until stopped the sending (exit 1)
    └── InterruptedRun            SIGINT/SIGTERM stopped the run (exit 130 / 143)

Messages never contain secrets: the client secret and bearer tokens are never
formatted into an exception.

`EXIT_CODES` is the one table of exit codes: `--help` renders it per command and a test
holds the README to it. When several apply, the first in `PRECEDENCE` wins.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field

HELP_WIDTH = 79
RUN, VALIDATE, RECONCILE, SANDBOX, SERVE = "run", "validate", "reconcile", "sandbox", "serve"
COMMANDS = (RUN, VALIDATE, RECONCILE, SANDBOX, SERVE)


@dataclass(frozen=True, slots=True)
class ExitCode:
    """One exit code: what it means, and which commands can return it."""

    code: int
    name: str
    meaning: str
    commands: tuple[str, ...]
    # What the code means for a command where the general meaning does not fit.
    meaning_for: Mapping[str, str] = field(default_factory=dict)

    def meaning_of(self, command: str) -> str:
        return self.meaning_for.get(command, self.meaning)


EXIT_CODES: tuple[ExitCode, ...] = (
    ExitCode(
        0,
        "ok",
        "every row created or already created, with nothing for a person to look at",
        COMMANDS,
        {
            VALIDATE: "every row valid (with --server: would be sent or is already paid)",
            RECONCILE: "every order is paid as expected",
            SANDBOX: "stopped by Ctrl-C or SIGTERM",
            SERVE: "stopped by Ctrl-C",
        },
    ),
    ExitCode(
        1,
        "rows_left",
        "some rows not created (failed, invalid, duplicate, not_attempted)",
        (RUN, VALIDATE, RECONCILE),
        {
            VALIDATE: "some rows invalid or duplicate",
            RECONCILE: "an order is not paid, paid with another token or source, or has "
            "more than one payment",
        },
    ),
    ExitCode(2, "usage", "usage, configuration, input-file or state-file problem", COMMANDS),
    ExitCode(
        3, "locked", "another run holds the lock of this organization and environment", (RUN,)
    ),
    ExitCode(
        4,
        "refused",
        "the API refused the credentials or the configuration (wrong organization or environment)",
        (RUN, VALIDATE, RECONCILE),
    ),
    ExitCode(
        5,
        "unreachable",
        "the API or the token endpoint could not be reached (connection refused, DNS, "
        "TLS, timeout)",
        (RUN, VALIDATE, RECONCILE),
    ),
    ExitCode(130, "interrupted", "interrupted by SIGINT (Ctrl-C); the report is written", (RUN,)),
    ExitCode(143, "terminated", "stopped by SIGTERM; the report is written", (RUN,)),
)

# When several codes apply, the first group here wins (130 and 143 are one rank).
PRECEDENCE: tuple[tuple[int, ...], ...] = ((3,), (2,), (4,), (5,), (130, 143), (1,), (0,))


def precedence_text(command: str | None = None) -> str:
    """'3, 2, 4, 5, 130/143, 1, 0', or only the codes `command` can return."""
    codes = {e.code for e in EXIT_CODES if command is None or command in e.commands}
    ranks = ("/".join(str(c) for c in rank if c in codes) for rank in PRECEDENCE)
    return ", ".join(r for r in ranks if r)


def exit_codes_help(command: str | None = None) -> str:
    """The exit codes of `command` (all of them for None) as a block for `--help`."""
    lines = [f"Exit codes (when several apply, the first of {precedence_text(command)} wins):"]
    for entry in EXIT_CODES:
        if command is None or command in entry.commands:
            meaning = entry.meaning if command is None else entry.meaning_of(command)
            head = f"  {entry.code:<4} {entry.name:<12} "
            lines += textwrap.wrap(
                meaning, HELP_WIDTH, initial_indent=head, subsequent_indent=" " * len(head)
            )
    return "\b\n" + "\n".join(lines) + "\n"


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
    """The state file cannot be opened, is not a paybatch state file, or is of a newer version."""

    exit_code = 2


class LockHeldError(PaybatchError):
    """Another run holds the lock of this organization and environment."""

    exit_code = 3


class AuthRefusedError(PaybatchError):
    """The API refused the credentials or the configuration (wrong org, environment, scope)."""

    exit_code = 4


class ApiUnreachableError(PaybatchError):
    """The API or its token endpoint could not be reached; `cause` says how.

    `cause` is one of "connection refused", "DNS", "TLS", "timeout", "connection lost"
    (see `api.unreachable_cause`).
    """

    exit_code = 5

    def __init__(self, message: str, *, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


class DeadlineReached(PaybatchError):
    """--max-duration or --until stopped the sending; the next run resumes the rows left."""

    exit_code = 1


class InterruptedRun(PaybatchError):
    """The run was stopped by a signal; the report was still written."""

    def __init__(self, signal_name: str, exit_code: int) -> None:
        super().__init__(f"interrupted by {signal_name}")
        self.exit_code = exit_code
