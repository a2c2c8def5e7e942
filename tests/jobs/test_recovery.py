"""Crash recovery: a service process SIGKILLed in the middle of a job, then restarted."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from vsms.cim.enums import JobState
from vsms.jobs.manager import JobManager
from vsms.model.job import JobRecord
from vsms.store.db import Store

from .helpers import book

REPO = Path(__file__).resolve().parents[2]


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise AssertionError(f"the child printed nothing within {timeout} s")
    line = proc.stdout.readline().strip()
    if not line and proc.poll() is not None:
        err = proc.stderr.read() if proc.stderr is not None else ""
        raise AssertionError(f"the child exited with {proc.returncode}: {err}")
    return line


def test_sigkilled_job_is_recovered_and_rolled_back(tmp_path: Path) -> None:
    db, target = tmp_path / "vsms.sqlite3", tmp_path / "half-copied.vhd"
    proc = subprocess.Popen([sys.executable, "-m", "tests.jobs.crash_child", str(db), str(target)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        job_id = read_line(proc, 30)
        assert len(job_id) == 36, job_id
        assert target.exists()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


    store = Store(db)
    try:
        assert store.integrity_check() is True
        before = {r.instance_id: r for r in store.load_jobs()}
        assert before[job_id].state is JobState.RUNNING
        mgr = JobManager(store, book())
        t0 = time.monotonic()
        assert mgr.recover() == [job_id]
        assert time.monotonic() - t0 < 10
        rec = mgr.get(job_id)
        assert rec is not None
        assert rec.state is JobState.EXCEPTION and rec.error_code == 32768
        assert rec.error_description == (
            "The vsms service stopped while this job was running (at 40%); its partial changes "
            "were rolled back (1 undo step). Run the operation again.")
        assert rec.end_time is not None
        assert not target.exists()  # the journaled RemovePath ran
        assert store.undo_entries(job_id) == []
        assert mgr.recover() == []  # nothing left to do the second time
        mgr.shutdown(5)
    finally:
        store.close()
    again = Store(db)
    try:
        rec2 = next(r for r in again.load_jobs() if r.instance_id == job_id)
        assert rec2.state is JobState.EXCEPTION
    finally:
        again.close()


def test_recovery_reports_incomplete_rollback_and_orphan_journals(tmp_path: Path) -> None:
    store = Store(tmp_path / "vsms.sqlite3")
    undone: list[str] = []

    try:
        crashed = JobRecord("AAAAAAAA-0000-4000-8000-000000000001", "Msvm_ConcreteJob", "n", "d",
                            state=JobState.SHUTTING_DOWN, percent=75)
        store.save_job(crashed)
        store.add_undo(crashed.instance_id, "record", {"n": "first"})
        store.add_undo(crashed.instance_id, "broken", {"path": "/v/a.vhd", "why": "device busy"})
        store.add_undo(crashed.instance_id, "record", {"n": "last"})
        store.add_undo("ORPHAN", "record", {"n": "orphan"})
        queued = JobRecord("AAAAAAAA-0000-4000-8000-000000000002", "Msvm_ConcreteJob", "q", "d")
        store.save_job(queued)
        mgr = JobManager(store, book(undone))
        assert sorted(mgr.recover()) == sorted([crashed.instance_id, queued.instance_id,
                                                "ORPHAN"])
        assert undone == ["last", "first", "orphan"]
        rec = mgr.get(crashed.instance_id)
        assert rec is not None and rec.state is JobState.EXCEPTION
        assert "(at 75%)" in rec.error_description
        assert "rollback incomplete: could not undo broken (path='/v/a.vhd'): device busy" in \
            rec.error_description
        q = mgr.get(queued.instance_id)
        assert q is not None and q.state is JobState.EXCEPTION
        assert "stopped before this job started" in q.error_description
        assert store.jobs_with_undo() == []
        mgr.shutdown(5)
    finally:
        store.close()
