"""Where a run's state lives: one file per organization and environment, in the user's data dir.

    <data dir>/acme-test.sqlite   the state of acme.commercelayer.io, test environment
    <data dir>/acme-test.lock     held by the run working that organization, whatever --state says

The data directory is `platformdirs.user_data_path("paybatch")` (on Linux
`~/.local/share/paybatch`, on Windows `%LOCALAPPDATA%\\paybatch`), or `$PAYBATCH_HOME`.
`--state` (or `$PAYBATCH_STATE`) picks another state file; the lock stays where it is, so
two runs on one host never work one organization at once.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from batch.journal import binding
from batch.statedb import binding_of

log = logging.getLogger(__name__)

HOME_VARIABLE = "PAYBATCH_HOME"
STATE_VARIABLE = "PAYBATCH_STATE"
# Where paybatch 0.1 kept the state: relative to the directory the run was started from.
LEGACY_STATE_PATH = Path("reports/paybatch.sqlite")


def data_dir(env: Mapping[str, str] = os.environ) -> Path:
    """`$PAYBATCH_HOME`, or the user's data directory for paybatch."""
    home = env.get(HOME_VARIABLE, "").strip()
    return Path(home).expanduser() if home else platformdirs.user_data_path("paybatch")


def org_slug(api_host: str) -> str:
    """`acme` for acme.commercelayer.io; a loopback sandbox keeps its address and port."""
    parts = urlsplit(f"//{api_host}")
    host = (parts.hostname or "").lower()
    if host == "localhost" or _is_address(host):
        slug = host if parts.port is None else f"{host}-{parts.port}"
    else:
        slug = host.split(".")[0]
    return re.sub(r"[^a-z0-9]+", "-", slug).strip("-") or "paybatch"


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class StateLocation:
    """The state file a run uses and the lock that guards its organization and environment."""

    path: Path
    lock_path: Path
    default: Path  # where the state of this organization and environment lives by default


def locate(
    *,
    api_host: str,
    environment: str,
    chosen: Path | None,
    directory: Path,
    legacy: Path = LEGACY_STATE_PATH,
) -> StateLocation:
    """The state file for one organization and environment (see the module docstring).

    `chosen` is --state or $PAYBATCH_STATE. Without it, an earlier version's `legacy` file is
    used when it belongs to this organization and environment, with a warning naming the
    new place; otherwise it is ignored, with a warning too.
    """
    name = f"{org_slug(api_host)}-{environment}"
    lock_path = directory / f"{name}.lock"
    default = directory / f"{name}.sqlite"
    if chosen is not None:
        return StateLocation(chosen, lock_path, default)
    if legacy.is_file() and legacy.resolve() != default.resolve():
        wanted = binding(api_host, environment)
        found = binding_of(legacy)
        if found == wanted:
            log.warning(
                "using the state file %s of an earlier paybatch version; state now lives in "
                "%s: move the file there to use it from any directory",
                legacy,
                default,
            )
            return StateLocation(legacy, lock_path, default)
        log.warning(
            "ignoring %s from an earlier paybatch version: it belongs to %s, not %s; "
            "the state file is %s",
            legacy,
            found or "no organization",
            wanted,
            default,
        )
    return StateLocation(default, lock_path, default)
