"""The SQLite store on real database files."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from vsms.cim.enums import JobState
from vsms.errors import InUse, InvalidParameter, OperationFailed, SystemNotAvailable
from vsms.model.job import AffectedElement, JobRecord
from vsms.store.db import Store, UndoEntry
from vsms.store.schema import MIGRATIONS, current_version, migrate


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "vsms.sqlite3"


@pytest.fixture
def store(db: Path):
    s = Store(db)
    yield s
    s.close()


def full_record(job_id: str = "6F3C0B1E-0000-4000-8000-000000000001") -> JobRecord:
    t0 = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    return JobRecord(
        instance_id=job_id, classname="Msvm_StorageJob", name="Create VHD",
        description="creates a disk", state=JobState.EXCEPTION, percent=42, error_code=32779,
        error_description="file not found: /x", error_summary="Create VHD failed",
        job_status="Failed", time_submitted=t0, start_time=t0 + timedelta(seconds=1),
        end_time=t0 + timedelta(seconds=5), time_of_last_state_change=t0 + timedelta(seconds=5),
        cancellable=False, storage_job_type=1, owner="alice",
        affected=[AffectedElement("Msvm_ComputerSystem", {"Name": "G1"}, [2, 5])],
        result={"Path": "/x.vhd", "n": [1, 2], "ok": True})


def test_opens_in_wal_mode_at_current_schema_version(store: Store, db: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert current_version(conn) == len(MIGRATIONS)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    assert {"jobs", "undo_journal", "consumed_imports", "schema_version"} <= tables


def test_job_round_trip_keeps_every_field(store: Store, db: Path) -> None:
    rec = full_record()
    store.save_job(rec)
    other = Store(db)  # a second connection reads what the first committed
    try:
        assert other.load_jobs() == [rec]
    finally:
        other.close()


def test_datetimes_are_stored_as_utc_text(store: Store, db: Path) -> None:
    cet = timezone(timedelta(hours=1))
    rec = JobRecord("J1", "Msvm_ConcreteJob", "n", "d",
                    time_submitted=datetime(2024, 1, 1, 13, 0, tzinfo=cet),
                    start_time=datetime(2024, 1, 1, 12, 30))  # naive: taken as UTC
    store.save_job(rec)
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT time_submitted, start_time, end_time FROM jobs").fetchone()
    finally:
        conn.close()
    assert row == ("2024-01-01T12:00:00+00:00", "2024-01-01T12:30:00+00:00", None)
    loaded = store.load_jobs()[0]
    assert loaded.time_submitted == datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    assert loaded.start_time == datetime(2024, 1, 1, 12, 30, tzinfo=UTC)


def test_save_replaces_and_delete_removes_job_and_journal(store: Store) -> None:
    rec = full_record()
    store.save_job(rec)
    rec.state, rec.percent = JobState.RUNNING, 7
    store.save_job(rec)
    store.add_undo(rec.instance_id, "remove_file", {"path": "/a"})
    assert [(r.state, r.percent) for r in store.load_jobs()] == [(JobState.RUNNING, 7)]
    store.delete_job(rec.instance_id)
    assert store.load_jobs() == []
    assert store.undo_entries(rec.instance_id) == []
    store.delete_job("no-such-job")  # no error


def test_undo_journal_order_and_clearing(store: Store) -> None:
    assert store.add_undo("A", "remove_file", {"path": "/1"}) == 1
    assert store.add_undo("A", "rename", {"src": "/s", "dst": "/d"}) == 2
    assert store.add_undo("B", "undefine", {"guid": "G"}) == 1
    assert store.undo_entries("A") == [UndoEntry(1, "remove_file", {"path": "/1"}),
                                       UndoEntry(2, "rename", {"src": "/s", "dst": "/d"})]
    assert store.jobs_with_undo() == ["A", "B"]
    store.clear_undo("A")
    assert store.undo_entries("A") == []
    assert store.jobs_with_undo() == ["B"]


def test_update_undo_replaces_one_record(store: Store) -> None:
    """A step journaled before its side effect is amended with what the effect revealed."""
    store.add_undo("A", "remove_file", {"parent": "/r", "name": "d", "dev": None, "ino": None})
    store.add_undo("A", "undefine", {"guid": "G"})
    store.update_undo("A", 1, {"parent": "/r", "name": "d", "dev": 5, "ino": 7})
    assert store.undo_entries("A") == [
        UndoEntry(1, "remove_file", {"parent": "/r", "name": "d", "dev": 5, "ino": 7}),
        UndoEntry(2, "undefine", {"guid": "G"})]
    with pytest.raises(InvalidParameter, match="not JSON"):
        store.update_undo("A", 2, {"guid": object()})
    assert store.undo_entries("A")[1].args == {"guid": "G"}


def test_undo_args_must_be_json(store: Store) -> None:
    with pytest.raises(InvalidParameter, match="not JSON"):
        store.add_undo("A", "remove_file", {"path": object()})
    assert store.jobs_with_undo() == []


def test_concurrent_writers_get_distinct_sequence_numbers(store: Store) -> None:
    seqs: list[int] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        for i in range(25):
            seq = store.add_undo("J", "remove_file", {"path": f"/{n}/{i}"})
            with lock:
                seqs.append(seq)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
        assert not t.is_alive()
    assert sorted(seqs) == list(range(1, 151))
    assert [e.seq for e in store.undo_entries("J")] == list(range(1, 151))


def test_transaction_is_atomic(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.save_job(full_record("J1"))
        store.add_undo("J1", "remove_file", {"path": "/x"})
        raise RuntimeError("boom")
    assert store.load_jobs() == []
    assert store.jobs_with_undo() == []
    with store.transaction(), store.transaction():
        store.save_job(full_record("J2"))
    assert [r.instance_id for r in store.load_jobs()] == ["J2"]


def test_consumed_directories_by_realpath(store: Store, tmp_path: Path) -> None:
    real = tmp_path / "export"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    assert store.consumed(str(real)) is None
    store.mark_consumed(str(link), "GUID-1")
    assert store.consumed(str(real)) == "GUID-1"
    assert store.consumed(str(real) + "/") == "GUID-1"
    with pytest.raises(InUse, match="already imported in place as virtual machine GUID-1"):
        store.mark_consumed(str(real), "GUID-2")
    store.unmark_consumed(str(real))
    assert store.consumed(str(link)) is None
    store.mark_consumed(str(real), "GUID-2")
    assert store.consumed(str(link)) == "GUID-2"


def test_forward_migration_keeps_data(db: Path) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        assert migrate(conn, MIGRATIONS[:1]) == 1
        conn.execute("INSERT INTO consumed_imports VALUES ('/d', 'G', 't')")
        v2 = "ALTER TABLE consumed_imports ADD COLUMN note TEXT NOT NULL DEFAULT '';"
        assert migrate(conn, (*MIGRATIONS[:1], v2)) == 2
        assert conn.execute("SELECT * FROM consumed_imports").fetchall() == [("/d", "G", "t", "")]
        assert current_version(conn) == 2
    finally:
        conn.close()


def test_failed_migration_leaves_old_version(db: Path) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        migrate(conn, MIGRATIONS[:1])
        bad = "CREATE TABLE extra (x INTEGER);\nINSERT INTO no_such_table VALUES (1);"
        with pytest.raises(sqlite3.OperationalError):
            migrate(conn, (*MIGRATIONS[:1], bad))
        assert current_version(conn) == 1
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "extra" not in names
    finally:
        conn.close()


def test_refuses_a_newer_database(db: Path) -> None:
    Store(db).close()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(OperationFailed, match=r"schema version 99.*newer vsms"):
        Store(db)


def test_unusable_locations_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SystemNotAvailable, match=r"cannot open.*directory exists"):
        Store(tmp_path / "missing" / "vsms.sqlite3")
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(SystemNotAvailable, match=r"unusable.*move it away"):
        Store(garbage)


def test_closed_store_refuses_work(db: Path) -> None:
    s = Store(db)
    s.close()
    s.close()
    with pytest.raises(SystemNotAvailable, match="closed"):
        s.load_jobs()


def test_integrity_check_detects_damage(db: Path) -> None:
    s = Store(db)
    for i in range(50):
        s.save_job(full_record(f"J{i:03d}"))
    assert s.integrity_check() is True
    s.close()  # the last close checkpoints the WAL into the main file
    conn = sqlite3.connect(db)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master "
                        "WHERE name = 'sqlite_autoindex_jobs_1'").fetchone()[0]
    conn.close()
    with open(db, "r+b") as f:  # scribble over the index page's cell pointers
        f.seek((root - 1) * page_size + 8)
        f.write(b"\xff" * 64)
    damaged = Store(db)
    try:
        assert damaged.integrity_check() is False
    finally:
        damaged.close()
