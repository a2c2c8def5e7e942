"""The SQLite schema of the store and its forward migrations.

``MIGRATIONS[i]`` turns a database at schema version ``i`` into version ``i + 1``. A database
records its version in the one-row table ``schema_version``; :func:`migrate` applies every
missing step in order, each in its own transaction, and refuses a database written by a newer
vsms (a downgrade would silently drop what the newer schema holds).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from vsms.errors import OperationFailed

_V1 = """
CREATE TABLE jobs (
    instance_id TEXT PRIMARY KEY,
    classname TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    state INTEGER NOT NULL,
    percent INTEGER NOT NULL,
    error_code INTEGER NOT NULL,
    error_description TEXT NOT NULL,
    error_summary TEXT NOT NULL,
    job_status TEXT NOT NULL,
    time_submitted TEXT,
    start_time TEXT,
    end_time TEXT,
    time_of_last_state_change TEXT,
    cancellable INTEGER NOT NULL,
    storage_job_type INTEGER NOT NULL,
    owner TEXT NOT NULL,
    affected TEXT NOT NULL,
    result TEXT NOT NULL
);
CREATE TABLE undo_journal (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    args TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
CREATE TABLE consumed_imports (
    directory TEXT PRIMARY KEY,
    vm_guid TEXT NOT NULL,
    consumed_at TEXT NOT NULL
);
"""

_V2 = """
CREATE TABLE file_digests (
    file TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    digest TEXT NOT NULL,
    used_at REAL NOT NULL
);
CREATE INDEX file_digests_used ON file_digests (used_at);
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2)
"""SQL scripts; entry ``i`` upgrades version ``i`` to ``i + 1``. Append, never edit."""


def current_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in ``conn`` (0 for an empty database)."""
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if row is None:
        return 0
    version = conn.execute("SELECT version FROM schema_version").fetchone()
    return int(version[0]) if version is not None else 0


def migrate(conn: sqlite3.Connection, migrations: Sequence[str] = MIGRATIONS) -> int:
    """Bring ``conn`` (autocommit mode) up to ``len(migrations)``; return the final version.

    Each step runs in one ``BEGIN IMMEDIATE`` transaction together with the version bump, so a
    crash leaves the database at the old version or the new one. Raises ``OperationFailed`` for
    a database newer than this code.
    """
    target = len(migrations)
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    version = current_version(conn)
    if version > target:
        raise OperationFailed(
            f"the database has schema version {version} but this vsms knows only up to "
            f"{target}: it was written by a newer vsms; run that version, or move the "
            "database away to start with an empty one")
    while version < target:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # executescript() would commit first; run the statements one by one instead
            for statement in _statements(migrations[version]):
                conn.execute(statement)
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version + 1,))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        version += 1
    return version


def _statements(script: str) -> list[str]:
    """Split a migration script into complete SQL statements."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        raise ValueError(f"incomplete SQL statement in migration: {buf.strip()[:60]!r}")
    return out
