"""Settings: the API credentials from the environment, and the run's options."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from batch.errors import InsecureURLError, UsageError

DEFAULT_AUTH_URL = "https://auth.commercelayer.io/oauth/token"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_FAIL_FAST_AFTER = 20
DEFAULT_GRACE_SECONDS = 10.0


class Secret:
    """A string that never shows itself in repr, str or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def checked_url(name: str, url: str) -> str:
    """Accept https anywhere and http only for loopback hosts."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{name} must be an http(s) URL, got {url!r}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise InsecureURLError(
            f"{name} uses plain http for {parts.hostname}; only https is allowed "
            "(http is accepted for loopback hosts only)"
        )
    return url.strip().rstrip("/")


@dataclass(frozen=True, kw_only=True)
class ApiConfig:
    """Where the API is and how to authenticate."""

    base_url: str
    client_id: str
    client_secret: Secret
    auth_url: str = DEFAULT_AUTH_URL
    scope: str | None = None

    @property
    def api_host(self) -> str:
        return urlsplit(self.base_url).netloc

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ApiConfig:
        """Read CL_BASE_URL, CL_CLIENT_ID, CL_CLIENT_SECRET, CL_SCOPE and CL_AUTH_URL."""
        missing = [
            name
            for name in ("CL_BASE_URL", "CL_CLIENT_ID", "CL_CLIENT_SECRET")
            if not env.get(name, "").strip()
        ]
        if missing:
            raise UsageError(
                "missing environment variable(s): "
                + ", ".join(missing)
                + " (or use --sandbox to rehearse against the built-in sandbox)"
            )
        return cls(
            base_url=checked_url("CL_BASE_URL", env["CL_BASE_URL"]),
            auth_url=checked_url("CL_AUTH_URL", env.get("CL_AUTH_URL") or DEFAULT_AUTH_URL),
            client_id=env["CL_CLIENT_ID"].strip(),
            client_secret=Secret(env["CL_CLIENT_SECRET"].strip()),
            scope=(env.get("CL_SCOPE") or "").strip() or None,
        )


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """What one `paybatch run` was asked to do."""

    input_path: Path
    report_path: Path | None = None
    state_path: Path | None = None  # None: <state_dir>/<org>-<environment>.sqlite
    state_dir: Path | None = None  # None: statefile.data_dir(); also where the lock lives
    concurrency: int | None = None
    rate_limits: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    settle_delay: float | None = None  # None: the timeout
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    fail_fast_after: int = DEFAULT_FAIL_FAST_AFTER
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    xlsx: bool = True
    summary_json: Path | None = None
    sheet: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    match: Literal["id", "number"] = "id"  # key rows on order_id, or on order_number
    sandbox: bool = False  # against the built-in sandbox: messages point to its options
    max_duration: float | None = None  # seconds of sending at most (--max-duration)
    until: time | None = None  # local time to stop sending at, next occurrence (--until)

    @property
    def effective_settle_delay(self) -> float:
        return self.timeout if self.settle_delay is None else self.settle_delay

    def deadline(self, started: datetime) -> tuple[float, str] | None:
        """Seconds from `started` until sending stops, and how to name it; None: no deadline.

        --until is the next occurrence of that local time after `started` (DST-aware: the
        naive local time is resolved by the system's time zone). Both given: the earlier.
        """
        found: list[tuple[float, str]] = []
        if self.max_duration is not None:
            at = (started + timedelta(seconds=self.max_duration)).astimezone()
            label = f"{_clock_text(at.time())} (--max-duration {duration_text(self.max_duration)})"
            found.append((self.max_duration, label))
        if self.until is not None:
            local = started.astimezone().replace(tzinfo=None)
            target = datetime.combine(local.date(), self.until)
            if target <= local:
                target += timedelta(days=1)
            seconds = (target.astimezone() - started).total_seconds()
            found.append((seconds, _clock_text(self.until)))
        return min(found) if found else None


_DURATION_RE = re.compile(
    r"^(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)s?)?$"
)


def parse_duration(text: str) -> float:
    """Seconds in "5h", "90m", "3600s", "1h30m" or "3600"; UsageError otherwise."""
    match = _DURATION_RE.match(text.strip().lower())
    if match is None or not any(match.groups()):
        raise UsageError(f"not a duration: {text!r} (expected e.g. 5h, 90m, 1h30m or 3600s)")
    hours, minutes, seconds = (float(g or 0) for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise UsageError(f"not a duration: {text!r} (it must be longer than zero)")
    return total


def parse_clock_time(text: str) -> time:
    """A local time of day, "06:30" or "6:30:15"; UsageError otherwise."""
    try:
        parts = [int(p) for p in text.strip().split(":")]
        if len(parts) not in (2, 3):
            raise ValueError
        return time(parts[0], parts[1], parts[2] if len(parts) == 3 else 0)
    except ValueError:
        raise UsageError(f"not a time of day: {text!r} (expected HH:MM, e.g. 06:30)") from None


def _clock_text(moment: time) -> str:
    """`06:30`, or `06:30:15` when the seconds matter."""
    return f"{moment:%H:%M:%S}" if moment.second else f"{moment:%H:%M}"


def duration_text(seconds: float) -> str:
    """`45 s`, `12 min 5 s`, `8 h 20 min`: for people, to the second below an hour."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"
