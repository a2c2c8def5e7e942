"""JobManager: runs asynchronous jobs on a bounded thread pool and keeps their records.

State machine of one job (``JobState``)::

    New ─► Starting ─► Running ─┬─► Completed                      (undo journal dropped)
     │                          ├─► Shutting Down ─► Terminated/Killed   (client cancel)
     │                          └─► Exception                      (error, or service shutdown)
     └─► Terminated/Killed (cancelled while queued)

On any failure the job's undo journal runs in reverse before the final state is recorded; an
undo step that fails is logged and named in ErrorDescription, never replacing the first error.
A finished job stays visible for ``retention`` after it ended, then disappears from ``get``,
``list`` and the store. Every record change is written to the store (progress at most about
twice a second), so ``recover`` can roll back and close the jobs a crash interrupted.
"""

from __future__ import annotations

import copy
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from threading import Condition
from typing import Any, Protocol

from vsms.cim.enums import JobRequestedState, JobState, ReturnCode, StateChangeReturn
from vsms.cim.names import CONCRETE_JOB
from vsms.errors import InvalidParameter, JobCancelled, NotFound, SystemNotAvailable, VsmsError
from vsms.jobs.context import JobContext, Work
from vsms.jobs.texts import one_line, steps, undescribed, with_problems
from vsms.jobs.undo import UndoBook
from vsms.model.job import TIME_BEFORE_REMOVAL, AffectedElement, JobRecord
from vsms.store.db import Store

log = logging.getLogger(__name__)


class Reservation(Protocol):
    """What a job holds while it runs (a VM's transition): released once, when the work has
    run (before its rollback, as a ``finally`` in it would), or when the job ends without
    running (cancelled while queued, shut down) or cannot be submitted at all."""

    def release(self) -> None: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False)
class _Job:
    ctx: JobContext
    work: Work | None  # None: loaded from the store, not run by this manager
    future: Future[None] | None = None
    requested: JobRequestedState | None = None  # Terminate/Kill asked by a client
    by_shutdown: bool = False  # cancelled because the service is shutting down
    reservation: Reservation | None = None

    def release(self) -> None:
        held, self.reservation = self.reservation, None
        if held is not None:
            held.release()

    @property
    def rec(self) -> JobRecord:
        return self.ctx.record


class JobManager:
    """Submits, runs, cancels, retains and recovers jobs. Thread-safe."""

    def __init__(self, store: Store, undo: UndoBook[Any], workers: int = 4,
                 retention: timedelta = TIME_BEFORE_REMOVAL, *,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        if workers < 1:
            raise InvalidParameter(f"job_workers must be at least 1, got {workers}")
        self._store = store
        self._undo = undo
        self._retention = retention
        self._clock = clock
        self._cond = Condition()
        self._jobs: dict[str, _Job] = {}
        self._closing = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vsms-job")
        for rec in store.load_jobs():
            self._jobs[rec.instance_id] = _Job(self._context(rec), None)

    def _context(self, rec: JobRecord) -> JobContext:
        return JobContext(rec, store=self._store, lock=self._cond, book=self._undo)

    # -- public API -----------------------------------------------------------------------

    def submit(self, *, name: str, description: str, work: Work, classname: str = CONCRETE_JOB,
               storage_job_type: int = 0, affected: Iterable[AffectedElement] = (),
               cancellable: bool = True, owner: str = "",
               reservation: Reservation | None = None) -> JobRecord:
        """Create, persist and queue a job; return its record (state New). The job owns
        ``reservation`` from now on, also when this raises."""
        try:
            with self._cond:
                if self._closing:
                    raise SystemNotAvailable(
                        "the vsms service is shutting down and accepts no new jobs; send the "
                        "request again once it has restarted")
                self._expire()
                now = self._clock()
                rec = JobRecord(instance_id=str(uuid.uuid4()).upper(), classname=classname,
                                name=name, description=description, state=JobState.NEW,
                                time_submitted=now, time_of_last_state_change=now,
                                cancellable=cancellable, storage_job_type=storage_job_type,
                                affected=list(affected), owner=owner)
                job = _Job(self._context(rec), work, reservation=reservation)
                job.ctx.persist()
                self._jobs[rec.instance_id] = job
                job.future = self._pool.submit(self._run, job)
                return copy.deepcopy(rec)
        except BaseException:
            if reservation is not None:
                reservation.release()
            raise

    def get(self, instance_id: str) -> JobRecord | None:
        """A snapshot of the job, or None if unknown or past its retention."""
        with self._cond:
            self._expire()
            job = self._jobs.get(instance_id)
            return copy.deepcopy(job.rec) if job is not None else None

    def request_state_change(self, instance_id: str, requested: int) -> StateChangeReturn:
        """Msvm_ConcreteJob.RequestStateChange: only Terminate (4) and Kill (5) are served."""
        with self._cond:
            self._expire()
            job = self._find(instance_id)
            if requested not in (JobRequestedState.TERMINATE, JobRequestedState.KILL):
                if requested in (JobRequestedState.START, JobRequestedState.SUSPEND,
                                 JobRequestedState.SERVICE):
                    return StateChangeReturn.NOT_SUPPORTED
                return StateChangeReturn.INVALID_PARAMETER
            if job.rec.state.finished or job.work is None:
                return StateChangeReturn.INVALID_STATE_TRANSITION
            if not job.rec.cancellable:
                return StateChangeReturn.NOT_SUPPORTED
            if job.requested is not None:
                return StateChangeReturn.TRANSITION_STARTED
            if job.rec.state is JobState.SHUTTING_DOWN:
                return StateChangeReturn.INVALID_STATE_TRANSITION
            job.requested = JobRequestedState(requested)
            job.ctx.cancel_event.set()
            if job.rec.state is JobState.NEW:
                self._finish(job, _cancelled_state(job.requested), ReturnCode.FAILED,
                             "The job was cancelled at the client's request before it "
                             "started; nothing was changed.", "Cancelled at the client's request")
                if job.future is not None:
                    job.future.cancel()
            return StateChangeReturn.TRANSITION_STARTED

    def wait(self, instance_id: str, timeout: float) -> JobRecord:
        """Block until the job has finished or ``timeout`` seconds passed; return its record."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            job = self._find(instance_id)
            while not job.rec.state.finished:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return copy.deepcopy(job.rec)

    def recover(self) -> list[str]:
        """At start-up: roll back and end (Exception) every job a crash left unfinished.

        Also runs undo journals left without a job record. Returns the affected job IDs.
        """
        with self._cond:
            stale = [job for job in self._jobs.values()
                     if job.work is None and not job.rec.state.finished]
        recovered: list[str] = []
        for job in stale:
            before = job.rec.state
            problems, count = self._rollback(job.rec.instance_id)
            if before in (JobState.NEW, JobState.STARTING) and count == 0:
                text = ("The vsms service stopped before this job started; nothing was "
                        "changed. Run the operation again.")
            else:
                text = (f"The vsms service stopped while this job was running (at "
                        f"{job.rec.percent}%); its partial changes were rolled back "
                        f"({steps(count)}). Run the operation again.")
            log.warning("job %s (%s) was interrupted by a crash; rolled back %s",
                        job.rec.instance_id, job.rec.name, steps(count))
            with self._cond:
                self._finish(job, JobState.EXCEPTION, ReturnCode.FAILED,
                             with_problems(text, problems), "Interrupted by a service stop")
            recovered.append(job.rec.instance_id)
        for job_id in self._store.jobs_with_undo():
            with self._cond:
                owner = self._jobs.get(job_id)
            if owner is not None and (owner.work is not None or not owner.rec.state.finished):
                continue
            if owner is not None:  # a finished job's leftover journal: its outcome is recorded
                log.warning("dropping the leftover undo journal of finished job %s", job_id)
                self._store.clear_undo(job_id)
                continue
            problems, count = self._rollback(job_id)
            log.warning("rolled back the undo journal of unknown job %s (%s)%s", job_id,
                        steps(count), with_problems("", problems))
            self._store.clear_undo(job_id)
            recovered.append(job_id)
        return recovered

    def shutdown(self, timeout: float) -> None:
        """Cancel every running job, wait up to ``timeout`` seconds for them, stop the pool.

        Jobs that end by the cancellation are recorded as interrupted by the shutdown
        (Exception); a job still running at the deadline stays Running in the store and is
        recovered at the next start.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            self._closing = True
            for job in self._jobs.values():
                if job.work is None or job.rec.state.finished:
                    continue
                if job.rec.state is JobState.NEW:
                    self._finish(job, JobState.EXCEPTION, ReturnCode.FAILED,
                                 "The vsms service was shut down before this job started; "
                                 "nothing was changed. Run the operation again.",
                                 "Interrupted by a service shutdown")
                    if job.future is not None:
                        job.future.cancel()
                    continue
                if job.requested is None:
                    job.by_shutdown = True
                job.ctx.cancel_event.set()
            while True:
                left = [j.rec.instance_id for j in self._jobs.values()
                        if j.work is not None and not j.rec.state.finished]
                remaining = deadline - time.monotonic()
                if not left or remaining <= 0:
                    break
                self._cond.wait(remaining)
        if left:
            log.warning("shutdown: %d job(s) still running after %.1f s, left for recovery at "
                        "the next start: %s", len(left), timeout, ", ".join(left))
        self._pool.shutdown(wait=False, cancel_futures=True)

    def records(self) -> list[JobRecord]:
        """Snapshots of every job still within its retention, oldest submission first."""
        with self._cond:
            self._expire()
            recs = [copy.deepcopy(job.rec) for job in self._jobs.values()]
        return sorted(recs, key=lambda r: (r.time_submitted or datetime.min.replace(tzinfo=UTC),
                                           r.instance_id))

    # -- internals ------------------------------------------------------------------------

    def _find(self, instance_id: str) -> _Job:
        job = self._jobs.get(instance_id)
        if job is None:
            raise NotFound(
                f"job {instance_id} does not exist: it never did, or it finished more than "
                f"{int(self._retention.total_seconds())} s ago and was removed; enumerate "
                "the jobs to see the current ones")
        return job

    def _run(self, job: _Job) -> None:
        try:
            self._execute(job)
        except BaseException:
            log.exception("the job engine failed while running job %s", job.rec.instance_id)

    def _execute(self, job: _Job) -> None:
        assert job.work is not None
        with self._cond:
            started = job.rec.state is JobState.NEW
            if started:
                self._change(job, JobState.STARTING)
                job.rec.start_time = self._clock()
                self._change(job, JobState.RUNNING)
        if not started:  # cancelled while queued, or shut down: _finish released it
            return
        error: Exception | None = None
        try:
            job.work.run(job.ctx)
        except Exception as exc:
            error = exc
        finally:
            job.release()
        if error is not None:  # handled outside the except block: undo errors stay unchained
            self._fail(job, error)
            return
        with self._cond:
            self._finish(job, JobState.COMPLETED, 0, "", "")

    def _fail(self, job: _Job, error: Exception) -> None:
        cancelled = isinstance(error, JobCancelled)
        with self._cond:
            by_client = cancelled and job.requested is not None
            by_shutdown = cancelled and not by_client and job.by_shutdown
            job.rec.job_status = "Rolling back"
            if by_client:
                self._change(job, JobState.SHUTTING_DOWN)
            else:
                self._save(job)
        if not isinstance(error, VsmsError):
            log.error("job %s (%s) failed with an internal error", job.rec.instance_id,
                      job.rec.name, exc_info=error)
        else:
            log.log(logging.INFO if error.expected else logging.WARNING, "job %s (%s) ended: %s",
                    job.rec.instance_id, job.rec.name, error)
        problems, count = self._rollback(job.rec.instance_id)
        with self._cond:
            if by_client:
                assert job.requested is not None
                verb = "Kill" if job.requested is JobRequestedState.KILL else "Terminate"
                text = (f"The job was cancelled at the client's request ({verb}) and its "
                        f"changes were rolled back ({steps(count)}).")
                self._finish(job, _cancelled_state(job.requested), ReturnCode.FAILED,
                             with_problems(text, problems), "Cancelled at the client's request")
            elif by_shutdown:
                text = (f"The vsms service was shut down while this job was running (at "
                        f"{job.rec.percent}%); its partial changes were rolled back "
                        f"({steps(count)}). Run the operation again.")
                self._finish(job, JobState.EXCEPTION, ReturnCode.FAILED,
                             with_problems(text, problems), "Interrupted by a service shutdown")
            elif isinstance(error, VsmsError):
                self._finish(job, JobState.EXCEPTION, int(error.code),
                             with_problems(str(error), problems),
                             one_line(f"{job.rec.name} failed: {error}"))
            else:
                text = f"internal error: {type(error).__name__}: {error}"
                self._finish(job, JobState.EXCEPTION, ReturnCode.FAILED,
                             with_problems(text, problems),
                             one_line(f"{job.rec.name} failed with an internal error"))

    def _rollback(self, job_id: str) -> tuple[list[str], int]:
        """Run the undo journal of ``job_id`` newest first; return (problems, step count)."""
        try:
            entries = self._store.undo_entries(job_id)
        except VsmsError as exc:
            log.error("cannot read the undo journal of job %s: %s", job_id, exc)
            return [f"could not read the undo journal: {exc}"], 0
        problems: list[str] = []
        for entry in reversed(entries):
            what = undescribed(entry.kind, entry.args)
            try:
                step = self._undo.load(entry.kind, entry.args)
                what = step.describe()
                self._undo.run(step)
            except Exception as exc:
                log.warning("job %s: undo step %d (%s) failed", job_id, entry.seq, entry.kind,
                            exc_info=True)
                problems.append(f"could not {what}: {exc}")
        return problems, len(entries)

    def _change(self, job: _Job, state: JobState) -> None:
        """Move to ``state`` (lock held) and write the record."""
        job.rec.state = state
        job.rec.time_of_last_state_change = self._clock()
        self._save(job)

    def _save(self, job: _Job) -> None:
        try:
            job.ctx.persist()
        except VsmsError:
            log.error("could not store job %s", job.rec.instance_id, exc_info=True)
        self._cond.notify_all()

    def _finish(self, job: _Job, state: JobState, code: int, text: str, summary: str) -> None:
        """End the job (lock held): final state, error fields, record written, journal dropped,
        reservation released (if the work never ran)."""
        job.release()
        rec = job.rec
        now = self._clock()
        rec.state, rec.end_time, rec.time_of_last_state_change = state, now, now
        rec.error_code, rec.error_description, rec.error_summary = int(code), text, summary
        if state is JobState.COMPLETED:
            rec.percent = 100
        rec.job_status = _STATUS_TEXT[state]
        try:
            with self._store.transaction():
                job.ctx.persist()
                self._store.clear_undo(rec.instance_id)
        except VsmsError:
            log.error("could not store the end of job %s", rec.instance_id, exc_info=True)
        self._cond.notify_all()

    def _expire(self) -> None:
        """Forget finished jobs older than the retention (lock held)."""
        now = self._clock()
        for job_id, job in list(self._jobs.items()):
            end = job.rec.end_time
            if job.rec.state.finished and end is not None and end + self._retention <= now:
                del self._jobs[job_id]
                try:
                    self._store.delete_job(job_id)
                except VsmsError:
                    log.warning("could not delete expired job %s", job_id, exc_info=True)


_STATUS_TEXT = {
    JobState.COMPLETED: "Completed",
    JobState.TERMINATED: "Terminated",
    JobState.KILLED: "Killed",
    JobState.EXCEPTION: "Failed",
}


def _cancelled_state(requested: JobRequestedState) -> JobState:
    return JobState.KILLED if requested is JobRequestedState.KILL else JobState.TERMINATED

