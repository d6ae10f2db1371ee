"""Settings: the API credentials from the environment, and the run's options."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
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

    @property
    def effective_settle_delay(self) -> float:
        return self.timeout if self.settle_delay is None else self.settle_delay
