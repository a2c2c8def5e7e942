"""JobManager and JobContext on a real SQLite store."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from vsms.cim.enums import JobState, ReturnCode, StateChangeReturn
from vsms.cim.names import STORAGE_JOB
from vsms.errors import FileNotFound, InvalidParameter, NotFound, SystemNotAvailable
from vsms.jobs.context import JobContext
from vsms.jobs.manager import JobManager
from vsms.jobs.undo import UndoBook, UndoStep
from vsms.model.job import AffectedElement, JobRecord
from vsms.store.db import Store

from .helpers import (
    DEADLINE,
    Broken,
    Clock,
    FnWork,
    Record,
    RemovePath,
    book,
    until_cancelled,
    wait_event,
)


class RecordingStore(Store):
    """A real store that also remembers the state of every job row it writes."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.saved: list[tuple[str, JobState, int]] = []

    def save_job(self, rec: JobRecord) -> None:
        super().save_job(rec)
        self.saved.append((rec.instance_id, rec.state, rec.percent))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "vsms.sqlite3"


@pytest.fixture
def store(db: Path) -> Iterator[RecordingStore]:
    s = RecordingStore(db)
    yield s
    s.close()


@pytest.fixture
def undone() -> list[Any]:
    return []


@pytest.fixture
def handlers(undone: list[Any]) -> UndoBook[list[Any]]:
    return book(undone)


@pytest.fixture
def make(store: RecordingStore, handlers: UndoBook[list[Any]]) -> Iterator[Any]:
    made: list[JobManager] = []

    def factory(**kw: Any) -> JobManager:
        mgr = JobManager(store, handlers, **kw)
        made.append(mgr)
        return mgr

    yield factory
    for mgr in made:
        mgr.shutdown(5)


def stored(db: Path, job_id: str) -> JobRecord:
    """The job as a fresh connection reads it from the file."""
    other = Store(db)
    try:
        return next(r for r in other.load_jobs() if r.instance_id == job_id)
    finally:
        other.close()


def test_successful_job_state_sequence(make: Any, store: RecordingStore, db: Path) -> None:
    mgr = make()
    seen: dict[str, Any] = {}

    def body(ctx: JobContext) -> None:
        seen["running"] = mgr.get(ctx.job_id)
        seen["on_disk"] = stored(db, ctx.job_id).state
        ctx.progress(50)
        ctx.status("copying")
        ctx.set_result(Path="/v/disk.vhd")
        ctx.add_undo(Record(1))
        ctx.add_affected(AffectedElement("Msvm_ComputerSystem", {"Name": "G"}))

    rec = mgr.submit(name="Import Virtual System", description="import", work=FnWork(body))
    assert rec.state is JobState.NEW and rec.time_submitted is not None
    assert rec.instance_id == rec.instance_id.upper() and len(rec.instance_id) == 36
    done = mgr.wait(rec.instance_id, DEADLINE)
    assert done.state is JobState.COMPLETED
    assert (done.percent, done.error_code, done.error_description) == (100, 0, "")
    assert done.result == {"Path": "/v/disk.vhd"}
    assert done.affected == [AffectedElement("Msvm_ComputerSystem", {"Name": "G"}, [5])]
    assert done.start_time is not None and done.end_time is not None
    assert done.time_submitted <= done.start_time <= done.end_time
    assert seen["running"].state is JobState.RUNNING and seen["on_disk"] is JobState.RUNNING
    states = [s for (i, s, _) in store.saved if i == rec.instance_id]
    deduped = [s for k, s in enumerate(states) if k == 0 or states[k - 1] is not s]
    assert deduped == [JobState.NEW, JobState.STARTING, JobState.RUNNING, JobState.COMPLETED]
    assert stored(db, rec.instance_id) == done
    assert store.undo_entries(rec.instance_id) == []  # success makes the change permanent


def test_vsms_error_rolls_back_in_reverse(make: Any, undone: list[Any], db: Path) -> None:
    mgr = make()

    def body(ctx: JobContext) -> None:
        for n in (1, 2, 3):
            ctx.add_undo(Record(n))
        raise FileNotFound("the export directory /e has no config.xml; export the VM again")

    rec = mgr.submit(name="Import Virtual System", description="d", work=FnWork(body))
    done = mgr.wait(rec.instance_id, DEADLINE)
    assert done.state is JobState.EXCEPTION
    assert done.error_code == ReturnCode.FILE_NOT_FOUND
    assert done.error_description == (
        "the export directory /e has no config.xml; export the VM again")
    assert done.error_summary.startswith("Import Virtual System failed: the export directory")
    assert "\n" not in done.error_summary and len(done.error_summary) <= 120
    assert undone == [3, 2, 1]
    assert stored(db, rec.instance_id).state is JobState.EXCEPTION


def test_internal_error_is_reported_as_such(make: Any, undone: list[Any]) -> None:
    mgr = make()

    def body(ctx: JobContext) -> None:
        ctx.add_undo(Record(7))
        raise KeyError("disk0")

    done = mgr.wait(mgr.submit(name="n", description="d", work=FnWork(body)).instance_id,
                    DEADLINE)
    assert done.state is JobState.EXCEPTION and done.error_code == 32768
    assert done.error_description == "internal error: KeyError: 'disk0'"
    assert undone == [7]


def test_failing_undo_does_not_mask_first_error(make: Any, tmp_path: Path,
                                                undone: list[Any]) -> None:
    mgr = make()
    made, stuck = tmp_path / "made.vhd", tmp_path / "stuck"

    def body(ctx: JobContext) -> None:
        ctx.add_undo(Record(1))
        ctx.add_undo(RemovePath(str(stuck)))  # a directory: os.remove fails for real
        stuck.mkdir()
        ctx.add_undo(Broken("/v/locked.vhd"))
        ctx.add_undo(RemovePath(str(made)))
        made.write_text("x")
        raise InvalidParameter("MaxInternalSize 0 is too small; give at least 3 MiB")

    done = mgr.wait(mgr.submit(name="n", description="d", work=FnWork(body)).instance_id,
                    DEADLINE)
    assert done.error_code == ReturnCode.INVALID_PARAMETER
    assert done.error_description.startswith("MaxInternalSize 0 is too small; give at least")
    assert (f"rollback incomplete: could not undo broken (path='/v/locked.vhd'): [Errno 13] "
            f"Permission denied: '/v/locked.vhd'; could not remove {stuck}: [Errno 21] "
            in done.error_description)
    assert not made.exists() and undone == [1]  # the other steps still ran


def test_terminate_running_job_rolls_back(make: Any, tmp_path: Path, store: Store) -> None:
    mgr = make()
    started = threading.Event()
    made = tmp_path / "partial.vhd"

    def body(ctx: JobContext) -> None:
        ctx.add_undo(RemovePath(str(made)))
        made.write_text("partial")
        started.set()
        until_cancelled(ctx)

    rec = mgr.submit(name="Copy", description="d", work=FnWork(body))
    wait_event(started)
    assert mgr.request_state_change(rec.instance_id, 4) is StateChangeReturn.TRANSITION_STARTED
    done = mgr.wait(rec.instance_id, DEADLINE)
    assert done.state is JobState.TERMINATED and done.error_code == 32768
    assert "cancelled at the client's request" in done.error_description
    assert "rolled back" in done.error_description
    assert not made.exists()
    assert store.undo_entries(rec.instance_id) == []
    assert mgr.request_state_change(rec.instance_id, 4) is \
        StateChangeReturn.INVALID_STATE_TRANSITION


def test_kill_ends_killed_after_shutting_down(make: Any, store: RecordingStore,
                                            undone: list[Any]) -> None:
    mgr = make()
    started = threading.Event()

    def body(ctx: JobContext) -> None:
        ctx.add_undo(Record(1))
        started.set()
        until_cancelled(ctx)

    rec = mgr.submit(name="n", description="d", work=FnWork(body))
    wait_event(started)
    assert mgr.request_state_change(rec.instance_id, 5) is StateChangeReturn.TRANSITION_STARTED
    assert mgr.request_state_change(rec.instance_id, 4) is StateChangeReturn.TRANSITION_STARTED
    done = mgr.wait(rec.instance_id, DEADLINE)
    assert done.state is JobState.KILLED and "(Kill)" in done.error_description
    states = [s for (i, s, _) in store.saved if i == rec.instance_id]
    assert states[-2:] == [JobState.SHUTTING_DOWN, JobState.KILLED]
    assert undone == [1]


def test_terminate_queued_job_never_starts(make: Any) -> None:
    mgr = make(workers=1)
    release, ran = threading.Event(), threading.Event()
    first = mgr.submit(name="blocker", description="d",
                       work=FnWork(lambda ctx: wait_event(release)))
    queued = mgr.submit(name="queued", description="d", work=FnWork(lambda ctx: ran.set()))
    assert mgr.get(queued.instance_id).state is JobState.NEW
    assert mgr.request_state_change(queued.instance_id, 4) is StateChangeReturn.TRANSITION_STARTED
    rec = mgr.get(queued.instance_id)
    assert rec is not None and rec.state is JobState.TERMINATED and rec.error_code == 32768
    assert "before it started" in rec.error_description
    release.set()
    assert mgr.wait(first.instance_id, DEADLINE).state is JobState.COMPLETED
    time.sleep(0.1)
    assert not ran.is_set()
    assert mgr.get(queued.instance_id).state is JobState.TERMINATED


def test_invalid_requests_return_documented_codes(make: Any) -> None:
    mgr = make()
    release = threading.Event()
    running = mgr.submit(name="n", description="d", work=FnWork(lambda ctx: wait_event(release)))
    fixed = mgr.submit(name="n", description="d", cancellable=False,
                       work=FnWork(lambda ctx: wait_event(release)))
    for requested in (2, 3, 6):
        assert mgr.request_state_change(running.instance_id, requested) is \
            StateChangeReturn.NOT_SUPPORTED
    for requested in (0, 1, 7, 11, 32768):
        assert mgr.request_state_change(running.instance_id, requested) is \
            StateChangeReturn.INVALID_PARAMETER
    assert mgr.request_state_change(fixed.instance_id, 4) is StateChangeReturn.NOT_SUPPORTED
    with pytest.raises(NotFound, match="does not exist"):
        mgr.request_state_change("00000000-0000-0000-0000-000000000000", 4)
    release.set()
    for job in (running, fixed):
        assert mgr.wait(job.instance_id, DEADLINE).state is JobState.COMPLETED
        assert mgr.request_state_change(job.instance_id, 4) is \
            StateChangeReturn.INVALID_STATE_TRANSITION
    assert mgr.get(running.instance_id).error_code == 0


def test_progress_is_clamped_monotonic_and_persisted(make: Any, db: Path) -> None:
    mgr = make()
    step, go = threading.Event(), threading.Event()
    observed: list[int] = []

    def body(ctx: JobContext) -> None:
        ctx.progress(30)
        ctx.progress(20)  # ignored: never goes back
        ctx.progress(float("nan"))
        observed.append(mgr.get(ctx.job_id).percent)
        time.sleep(ctx.PROGRESS_INTERVAL + 0.1)
        ctx.progress(45.7)
        step.set()
        wait_event(go)
        ctx.progress(250)
        observed.append(mgr.get(ctx.job_id).percent)
        ctx.progress(-3)
        observed.append(mgr.get(ctx.job_id).percent)

    rec = mgr.submit(name="n", description="d", work=FnWork(body))
    wait_event(step)
    assert mgr.get(rec.instance_id).percent == 45
    assert stored(db, rec.instance_id).percent == 45
    go.set()
    assert mgr.wait(rec.instance_id, DEADLINE).percent == 100
    assert observed == [30, 100, 100]


def test_progress_writes_are_throttled(make: Any, store: RecordingStore) -> None:
    mgr = make()

    def body(ctx: JobContext) -> None:
        for i in range(1, 100):
            ctx.progress(i)

    rec = mgr.submit(name="n", description="d", work=FnWork(body))
    mgr.wait(rec.instance_id, DEADLINE)
    writes = [p for (i, _, p) in store.saved if i == rec.instance_id]
    assert len(writes) <= 8, writes  # state changes plus a write or two, not one per call


def test_retention_with_injected_clock(make: Any, db: Path) -> None:
    clock = Clock()
    mgr = make(clock=clock, retention=timedelta(minutes=5))
    rec = mgr.submit(name="n", description="d", classname=STORAGE_JOB, storage_job_type=1,
                     work=FnWork(lambda ctx: None))
    done = mgr.wait(rec.instance_id, DEADLINE)
    assert done.classname == STORAGE_JOB and done.storage_job_type == 1
    assert done.end_time == clock.now
    clock.advance(timedelta(minutes=4, seconds=59))
    assert mgr.get(rec.instance_id) is not None
    assert [r.instance_id for r in mgr.records()] == [rec.instance_id]
    clock.advance(timedelta(seconds=1))
    assert mgr.get(rec.instance_id) is None
    assert mgr.records() == []
    other = Store(db)
    try:
        assert other.load_jobs() == []
    finally:
        other.close()
    with pytest.raises(NotFound):
        mgr.wait(rec.instance_id, 0)


def test_running_jobs_are_not_expired(make: Any) -> None:
    clock = Clock()
    mgr = make(clock=clock)
    release = threading.Event()
    rec = mgr.submit(name="n", description="d", work=FnWork(lambda ctx: wait_event(release)))
    clock.advance(timedelta(hours=1))
    assert mgr.get(rec.instance_id) is not None
    release.set()
    assert mgr.wait(rec.instance_id, DEADLINE).state is JobState.COMPLETED


def test_wait_returns_at_the_deadline(make: Any) -> None:
    mgr = make()
    release = threading.Event()
    rec = mgr.submit(name="n", description="d", work=FnWork(lambda ctx: wait_event(release)))
    t0 = time.monotonic()
    assert mgr.wait(rec.instance_id, 0.3).state in (JobState.STARTING, JobState.RUNNING,
                                                     JobState.NEW)
    assert 0.25 <= time.monotonic() - t0 < 5
    release.set()
    assert mgr.wait(rec.instance_id, DEADLINE).state is JobState.COMPLETED


def test_new_manager_reloads_persisted_jobs(make: Any, db: Path, handlers: UndoBook[list[Any]]
                                            ) -> None:
    mgr = make()

    def body(ctx: JobContext) -> None:
        ctx.set_result(ImportedSystem="G1", Count=2)
        ctx.add_affected(AffectedElement("Msvm_ComputerSystem", {"Name": "G1"}, [5]))

    ok = mgr.wait(mgr.submit(name="ok", description="d", work=FnWork(body)).instance_id,
                  DEADLINE)
    def fail(ctx: JobContext) -> None:
        raise InvalidParameter("nope")

    bad = mgr.wait(mgr.submit(name="bad", description="d", work=FnWork(fail)).instance_id,
                   DEADLINE)
    mgr.shutdown(5)
    second = Store(db)
    try:
        again = JobManager(second, handlers)
        assert again.get(ok.instance_id) == ok
        assert again.get(bad.instance_id) == bad
        assert [r.instance_id for r in again.records()] == [ok.instance_id, bad.instance_id]
        assert again.recover() == []
        again.shutdown(5)
    finally:
        second.close()


def test_shutdown_cancels_rolls_back_and_refuses_new_jobs(make: Any, undone: list[Any]) -> None:
    mgr = make(workers=1)
    started = threading.Event()

    def body(ctx: JobContext) -> None:
        ctx.progress(60)
        ctx.add_undo(Record(9))
        started.set()
        until_cancelled(ctx)

    running = mgr.submit(name="n", description="d", work=FnWork(body))
    queued = mgr.submit(name="q", description="d", work=FnWork(lambda ctx: None))
    wait_event(started)
    mgr.shutdown(DEADLINE)
    rec = mgr.get(running.instance_id)
    assert rec is not None and rec.state is JobState.EXCEPTION and rec.error_code == 32768
    assert "service was shut down while this job was running (at 60%)" in rec.error_description
    assert "rolled back (1 undo step)" in rec.error_description
    assert undone == [9]
    q = mgr.get(queued.instance_id)
    assert q is not None and q.state is JobState.EXCEPTION
    assert "before this job started" in q.error_description
    with pytest.raises(SystemNotAvailable, match="shutting down"):
        mgr.submit(name="late", description="d", work=FnWork(lambda ctx: None))


@dataclass(frozen=True)
class FormatDisk(UndoStep[list[Any]]):
    """A step class the manager's book does not know."""

    kind = "format_disk"
    path: str

    def describe(self) -> str:
        return f"format {self.path}"

    def undo(self, env: list[Any]) -> None:
        raise AssertionError("never run")


def test_undo_of_unknown_kind_is_refused_before_the_side_effect(make: Any) -> None:
    mgr = make()

    def body(ctx: JobContext) -> None:
        ctx.add_undo(FormatDisk("/"))

    done = mgr.wait(mgr.submit(name="n", description="d", work=FnWork(body)).instance_id,
                    DEADLINE)
    assert done.state is JobState.EXCEPTION and "unknown kind 'format_disk'" in \
        done.error_description


def test_bad_worker_count(store: Store, handlers: UndoBook[list[Any]]) -> None:
    with pytest.raises(InvalidParameter, match="at least 1"):
        JobManager(store, handlers, workers=0)
