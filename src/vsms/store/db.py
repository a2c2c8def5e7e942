"""The SQLite store: jobs, their undo journals, the export directories consumed by imports and
the digests of files this host hashed (``vsms.disks.digests``).

One connection, opened with ``check_same_thread=False`` and guarded by a re-entrant lock, serves
every thread. The connection is in autocommit mode and every write runs inside an explicit
``BEGIN IMMEDIATE … COMMIT``; :meth:`Store.transaction` lets a caller group several writes into
one atomic transaction (nested uses join the outer one).

Durability: the database is in WAL mode with ``synchronous=NORMAL``. A commit appends the
transaction to the ``-wal`` file with ``write()`` before it returns; only checkpoints call
``fsync``. That is safe against a crash of the *process* — a SIGKILL, an abort, the OOM killer:
the written pages sit in the kernel's page cache, which outlives the process, so every
committed transaction is there when the next process opens the file, and an interrupted
transaction (no commit frame) is ignored. What NORMAL does not survive is the loss of the page
cache itself — a power cut or a kernel crash: the last transactions committed since the latest
checkpoint may roll back (the database stays consistent, never corrupt). After such a loss a
job may show an older state or progress, and an undo record written just before a side effect
may be missing, so that side effect (for example a half-copied disk file) is left behind
instead of rolled back.

Datetimes are stored as UTC ISO-8601 text (a naive datetime is taken to be UTC already);
``JobRecord.affected`` and ``JobRecord.result`` as JSON.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vsms.cim.enums import JobState
from vsms.disks.digests import FileIdentity
from vsms.errors import InUse, InvalidParameter, SystemNotAvailable
from vsms.model.job import AffectedElement, JobRecord
from vsms.store.schema import migrate

log = logging.getLogger(__name__)

DIGESTS_KEPT = 10_000  # file digests kept (a row is ~150 bytes)

_JOB_COLUMNS = (
    "instance_id", "classname", "name", "description", "state", "percent", "error_code",
    "error_description", "error_summary", "job_status", "time_submitted", "start_time",
    "end_time", "time_of_last_state_change", "cancellable", "storage_job_type", "owner",
    "affected", "result",
)
_DATETIME_COLUMNS = ("time_submitted", "start_time", "end_time", "time_of_last_state_change")


@dataclass(frozen=True)
class UndoEntry:
    """One write-ahead undo record: ``kind`` names the handler, ``args`` its keyword data."""

    seq: int
    kind: str
    args: dict[str, Any]


class Store:
    """The vsms database at ``path`` (created and migrated on open). Thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._depth = 0
        try:
            conn = sqlite3.connect(str(self.path), isolation_level=None,
                                   check_same_thread=False, timeout=10.0)
        except sqlite3.Error as exc:
            raise SystemNotAvailable(
                f"cannot open the vsms database {self.path}: {exc}; check that its directory "
                "exists and is writable by the service") from exc
        try:
            conn.execute("PRAGMA busy_timeout = 10000")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise SystemNotAvailable(
                    f"the vsms database {self.path} cannot use WAL mode (got {mode!r}); "
                    "put the state directory on a local file system")
            conn.execute("PRAGMA synchronous = NORMAL")
            migrate(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise SystemNotAvailable(
                f"the vsms database {self.path} is unusable: {exc}; if it is damaged, move it "
                "away (jobs and import marks are lost) and restart the service") from exc
        except BaseException:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn

    # -- plumbing -------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SystemNotAvailable(
                f"the vsms database {self.path} is closed; the service is shutting down")
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the enclosed writes atomically; a nested use joins the outer transaction."""
        with self._lock:
            conn = self._connection()
            if self._depth:
                self._depth += 1
                try:
                    yield conn
                finally:
                    self._depth -= 1
                return
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._failure("start a transaction", exc) from exc
            self._depth = 1
            try:
                yield conn
            except BaseException:
                self._depth = 0
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    log.exception("rollback of a failed transaction in %s failed", self.path)
                raise
            self._depth = 0
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise self._failure("commit", exc) from exc

    def _write(self, what: str, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self.transaction() as conn:
            try:
                return conn.execute(sql, params)
            except sqlite3.Error as exc:
                raise self._failure(what, exc) from exc

    def _read(self, what: str, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._connection().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._failure(what, exc) from exc

    def _failure(self, what: str, exc: sqlite3.Error) -> SystemNotAvailable:
        return SystemNotAvailable(
            f"the vsms database {self.path} failed to {what}: {exc}; check free disk space "
            "and the permissions of the state directory")

    # -- jobs -----------------------------------------------------------------------------

    def save_job(self, rec: JobRecord) -> None:
        """Insert or replace the row of ``rec``."""
        row = _job_row(rec)
        marks = ", ".join("?" for _ in _JOB_COLUMNS)
        self._write("save job " + rec.instance_id,
                    f"INSERT OR REPLACE INTO jobs ({', '.join(_JOB_COLUMNS)}) VALUES ({marks})",
                    row)

    def load_jobs(self) -> list[JobRecord]:
        """Every stored job, oldest submission first."""
        rows = self._read("load jobs", f"SELECT {', '.join(_JOB_COLUMNS)} FROM jobs "
                                       "ORDER BY time_submitted, instance_id")
        return [_job_from_row(row) for row in rows]

    def delete_job(self, job_id: str) -> None:
        """Delete the job and whatever is left of its undo journal (no error if absent)."""
        with self.transaction():
            self._write("delete job " + job_id, "DELETE FROM undo_journal WHERE job_id = ?",
                        (job_id,))
            self._write("delete job " + job_id, "DELETE FROM jobs WHERE instance_id = ?",
                        (job_id,))

    # -- undo journal ---------------------------------------------------------------------

    def add_undo(self, job_id: str, kind: str, args: dict[str, Any]) -> int:
        """Append an undo record for ``job_id``; committed when this returns. Returns its seq."""
        try:
            text = json.dumps(args, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise InvalidParameter(
                f"undo record {kind!r} of job {job_id} has arguments that are not JSON: {exc}; "
                "pass only strings, numbers, booleans, lists and dicts") from exc
        with self.transaction():
            row = self._read("number an undo record",
                             "SELECT COALESCE(MAX(seq), 0) FROM undo_journal WHERE job_id = ?",
                             (job_id,))
            seq = int(row[0][0]) + 1
            self._write("record an undo step",
                        "INSERT INTO undo_journal (job_id, seq, kind, args) VALUES (?, ?, ?, ?)",
                        (job_id, seq, kind, text))
        return seq

    def update_undo(self, job_id: str, seq: int, args: dict[str, Any]) -> None:
        """Replace the arguments of undo record ``seq`` of ``job_id`` (a step that learned
        what it created, e.g. a file's device and inode); committed when this returns."""
        try:
            text = json.dumps(args, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise InvalidParameter(
                f"undo record {seq} of job {job_id} has arguments that are not JSON: {exc}; "
                "pass only strings, numbers, booleans, lists and dicts") from exc
        self._write("complete an undo step",
                    "UPDATE undo_journal SET args = ? WHERE job_id = ? AND seq = ?",
                    (text, job_id, seq))

    def undo_entries(self, job_id: str) -> list[UndoEntry]:
        """The undo records of ``job_id`` in the order they were added."""
        rows = self._read("read the undo journal",
                          "SELECT seq, kind, args FROM undo_journal WHERE job_id = ? "
                          "ORDER BY seq", (job_id,))
        return [UndoEntry(int(seq), str(kind), json.loads(args)) for seq, kind, args in rows]

    def clear_undo(self, job_id: str) -> None:
        self._write("clear the undo journal", "DELETE FROM undo_journal WHERE job_id = ?",
                    (job_id,))

    def jobs_with_undo(self) -> list[str]:
        """IDs of the jobs that still have undo records."""
        rows = self._read("read the undo journal",
                          "SELECT DISTINCT job_id FROM undo_journal ORDER BY job_id")
        return [str(r[0]) for r in rows]

    # -- consumed import directories ------------------------------------------------------

    def mark_consumed(self, directory: str, vm_guid: str) -> None:
        """Record that an in-place import consumed ``directory`` (keyed by its realpath).

        Raises ``InUse`` if the directory is already marked.
        """
        key = os.path.realpath(directory)
        now = datetime.now(UTC).isoformat()
        with self.transaction():
            owner = self.consumed(key)
            if owner is not None:
                raise InUse(
                    f"the export directory {key} was already imported in place as virtual "
                    f"machine {owner}; export that virtual machine again to import it again")
            self._write("mark an import directory",
                        "INSERT INTO consumed_imports (directory, vm_guid, consumed_at) "
                        "VALUES (?, ?, ?)", (key, vm_guid, now))

    def consumed(self, directory: str) -> str | None:
        """The GUID of the VM whose import consumed ``directory``, or None."""
        rows = self._read("read import marks",
                          "SELECT vm_guid FROM consumed_imports WHERE directory = ?",
                          (os.path.realpath(directory),))
        return str(rows[0][0]) if rows else None

    def unmark_consumed(self, directory: str) -> None:
        self._write("unmark an import directory",
                    "DELETE FROM consumed_imports WHERE directory = ?",
                    (os.path.realpath(directory),))

    # -- digests of files (vsms.disks.digests.DigestBook) ----------------------------------

    def known_digest(self, ident: FileIdentity) -> str | None:
        """The SHA-256 recorded for this exact file identity, or None."""
        rows = self._read("read a file digest",
                          "SELECT digest FROM file_digests WHERE file = ? AND size = ? "
                          "AND mtime_ns = ? AND ctime_ns = ?",
                          (f"{ident.dev}:{ident.ino}", ident.size, ident.mtime_ns,
                           ident.ctime_ns))
        return str(rows[0][0]) if rows else None

    def record_digest(self, ident: FileIdentity, digest: str) -> None:
        """Keep ``digest`` for the file (one row per inode; the least recently recorded rows
        beyond DIGESTS_KEPT are dropped)."""
        with self.transaction():
            self._write("record a file digest",
                        "INSERT OR REPLACE INTO file_digests (file, size, mtime_ns, ctime_ns, "
                        "digest, used_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (f"{ident.dev}:{ident.ino}", ident.size, ident.mtime_ns,
                         ident.ctime_ns, digest, time.time()))
            self._write("trim the file digests",
                        "DELETE FROM file_digests WHERE file IN (SELECT file FROM file_digests "
                        "ORDER BY used_at DESC LIMIT -1 OFFSET ?)", (DIGESTS_KEPT,))

    def forget_digests(self) -> int:
        """Drop every recorded file digest (the next use of each file hashes it); how many."""
        return int(self._write("forget the file digests", "DELETE FROM file_digests").rowcount)

    # -- maintenance ----------------------------------------------------------------------

    def integrity_check(self) -> bool:
        """Run ``PRAGMA integrity_check``; True when SQLite reports ``ok``."""
        with self._lock:
            try:
                rows = self._connection().execute("PRAGMA integrity_check").fetchall()
            except sqlite3.DatabaseError as exc:
                log.error("integrity check of %s failed: %s", self.path, exc)
                return False
        problems = [str(r[0]) for r in rows]
        if problems == ["ok"]:
            return True
        log.error("integrity check of %s found: %s", self.path, "; ".join(problems))
        return False

    def close(self) -> None:
        """Close the connection (idempotent); later calls raise ``SystemNotAvailable``."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _to_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _from_text(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _job_row(rec: JobRecord) -> tuple[Any, ...]:
    try:
        affected = json.dumps([{"classname": a.classname, "keys": a.keys,
                                "effects": list(a.effects)} for a in rec.affected])
        result = json.dumps(rec.result, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidParameter(
            f"job {rec.instance_id} holds a result or affected element that is not JSON: "
            f"{exc}; pass only strings, numbers, booleans, lists and dicts") from exc
    return (
        rec.instance_id, rec.classname, rec.name, rec.description, int(rec.state),
        int(rec.percent), int(rec.error_code), rec.error_description, rec.error_summary,
        rec.job_status, _to_text(rec.time_submitted), _to_text(rec.start_time),
        _to_text(rec.end_time), _to_text(rec.time_of_last_state_change),
        int(bool(rec.cancellable)), int(rec.storage_job_type), rec.owner, affected, result,
    )


def _job_from_row(row: tuple[Any, ...]) -> JobRecord:
    values = dict(zip(_JOB_COLUMNS, row, strict=True))
    for name in _DATETIME_COLUMNS:
        values[name] = _from_text(values[name])
    values["state"] = JobState(values["state"])
    values["cancellable"] = bool(values["cancellable"])
    values["affected"] = [AffectedElement(a["classname"], dict(a["keys"]), list(a["effects"]))
                          for a in json.loads(values["affected"])]
    values["result"] = json.loads(values["result"])
    return JobRecord(**values)
