"""The state file as an SQLite database: its tables, their migrations, and read-only peeks.

One file in WAL mode with synchronous=FULL (see batch.journal for what the rows mean).
A file of an earlier schema version is migrated in place when it is opened, never
refused for its version; a file that is not a paybatch state file at all is refused.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from batch.errors import StateError

log = logging.getLogger(__name__)

# The version this paybatch writes. A file of an earlier version is migrated in place on open
# (see MIGRATIONS); one of a later version is refused, since its rows may mean more than this
# version knows.
SCHEMA_VERSION = 3

# The tables of a new state file, at SCHEMA_VERSION.
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL DEFAULT '',
    started_at TEXT NOT NULL,
    finished_at TEXT,
    input_path TEXT NOT NULL,
    input_sha256 TEXT NOT NULL,
    exit_code INTEGER
);
CREATE TABLE IF NOT EXISTS payments (
    order_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    payment_id TEXT,
    http_status INTEGER,
    error_code TEXT NOT NULL DEFAULT '',
    error_detail TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    fingerprint TEXT NOT NULL,
    token_sha256 TEXT NOT NULL,
    input_sha256 TEXT NOT NULL,
    row_number INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    sent_run_id TEXT,
    created_run_id TEXT,
    sent_at REAL,
    sent_timeout REAL,
    flag TEXT NOT NULL DEFAULT '',
    first_seen_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS payments_state ON payments (state);
CREATE TABLE IF NOT EXISTS order_numbers (
    number TEXT PRIMARY KEY,
    order_id TEXT NOT NULL DEFAULT '',
    error_code TEXT NOT NULL DEFAULT '',
    error_detail TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL
);
"""


def _add_run_host(db: sqlite3.Connection) -> None:
    # The lock names its holder from the runs table; a PID means little without its machine
    # when the state file sits on a shared drive.
    db.execute("ALTER TABLE runs ADD COLUMN host TEXT NOT NULL DEFAULT ''")


def _add_sent_timeout_and_numbers(db: sqlite3.Connection) -> None:
    # A lost answer is looked up at sent_at + the timeout in force when it was sent + the
    # settle delay; a row sent before this column existed uses the rerun's --timeout.
    db.execute("ALTER TABLE payments ADD COLUMN sent_timeout REAL")
    # --match number: what each order number resolved to (or why it did not).
    db.execute(
        "CREATE TABLE order_numbers (number TEXT PRIMARY KEY, order_id TEXT NOT NULL "
        "DEFAULT '', error_code TEXT NOT NULL DEFAULT '', error_detail TEXT NOT NULL "
        "DEFAULT '', updated_at REAL NOT NULL)"
    )


# MIGRATIONS[n] takes a state file from version n to n + 1, inside the transaction that
# records the new version: a file is never left half-migrated.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _add_run_host,
    2: _add_sent_timeout_and_numbers,
}
# The tables every version has had: a file holding them but no version is a version 1
# file whose first run died between creating the tables and recording the version.
_V1_TABLES = frozenset({"meta", "runs", "payments"})


def connect(path: Path) -> sqlite3.Connection:
    """Open (or create) a state file, migrating one of an earlier version in place.

    A 0-byte file is a new state file; one copied without its `-wal` opens with what its
    last checkpoint held. Anything else that is not a paybatch state file is refused.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(f"{path.parent}: cannot create the directory ({exc.strerror})") from None
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA busy_timeout=5000")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            _prepare(db, path)
        except BaseException:
            db.close()
            raise
    except sqlite3.DatabaseError as exc:
        raise StateError(f"{path}: not a usable paybatch state file ({exc})") from None
    return db


def _prepare(db: sqlite3.Connection, path: Path) -> None:
    """Create the tables of a new file, or bring an earlier version's up to date."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = _version(db, path)
        if version is None:
            for statement in filter(str.strip, SCHEMA.split(";")):
                db.execute(statement)
            db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif version > SCHEMA_VERSION:
            raise StateError(
                f"{path}: state file of schema version {version}, written by a newer paybatch "
                f"(this one knows up to {SCHEMA_VERSION}); upgrade paybatch to use it"
            )
        elif version < SCHEMA_VERSION:
            for step in range(version, SCHEMA_VERSION):
                MIGRATIONS[step](db)
            db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            log.info(
                "state file migrated",
                extra={"state": str(path), "from_version": version, "to_version": SCHEMA_VERSION},
            )
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _version(db: sqlite3.Connection, path: Path) -> int | None:
    """The file's schema version; None for an empty database (a new file)."""
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return None
    found = None
    if "meta" in tables:
        found = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if found is None and tables >= _V1_TABLES:
        return 1
    if found is None or not str(found[0]).isdigit():
        raise StateError(f"{path}: an SQLite file, but not a paybatch state file")
    return int(found[0])


@dataclass(frozen=True, slots=True)
class OpenRun:
    """A run that a state file records as started and never finished."""

    run_id: str
    pid: int
    host: str
    started_at: str


def _existing(path: Path) -> sqlite3.Connection:
    # Read-write but never created: a read-only connection would leave `-wal` and `-shm`
    # files behind, which the last read-write connection removes on close.
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True)


def binding_of(path: Path) -> str | None:
    """The `environment@host` a state file belongs to, read without writing to the file.

    None when it belongs to none yet, or cannot be read as a state file.
    """
    try:
        db = _existing(path)
    except sqlite3.Error:
        return None
    try:
        row = db.execute("SELECT value FROM meta WHERE key='bound_to'").fetchone()
    except sqlite3.Error:
        return None
    finally:
        db.close()
    return None if row is None else str(row[0])


def unfinished_runs(path: Path) -> list[OpenRun]:
    """The runs a state file records as started and not finished, newest first."""
    try:
        db = _existing(path)
    except sqlite3.Error:
        return []
    try:
        columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
        host = "host" if "host" in columns else "''"
        rows = db.execute(
            f"SELECT run_id, pid, {host}, started_at FROM runs "  # noqa: S608
            "WHERE finished_at IS NULL ORDER BY started_at DESC"
        ).fetchall()
    except sqlite3.Error:
        return []
    finally:
        db.close()
    return [OpenRun(str(r[0]), int(r[1]), str(r[2]), str(r[3])) for r in rows]


@dataclass(frozen=True, slots=True)
class PastRun:
    """One row of a state file's `runs` table (it records no report paths)."""

    run_id: str
    started_at: str
    finished_at: str | None
    input_path: str
    exit_code: int | None


def past_runs(path: Path, limit: int = 50) -> list[PastRun]:
    """The newest runs a state file records, newest first; [] when it cannot be read."""
    try:
        db = _existing(path)
    except sqlite3.Error:
        return []
    try:
        rows = db.execute(
            "SELECT run_id, started_at, finished_at, input_path, exit_code FROM runs "
            "ORDER BY started_at DESC LIMIT ?",
            (limit,),
        ).fetchall()
    except sqlite3.Error:
        return []
    finally:
        db.close()
    return [PastRun(str(r[0]), str(r[1]), r[2], str(r[3]), r[4]) for r in rows]
