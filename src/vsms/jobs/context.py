"""JobContext: what the work of one running job sees and reports through.

The context owns the job's in-memory ``JobRecord``; every change to it happens under the
manager's condition lock (shared with the context), so readers always get a consistent
snapshot. Progress and status are held in memory and written to the store at most every
``PROGRESS_INTERVAL`` seconds (plus whenever the manager records a state change, and whenever
an undo record or affected element is added); clients read the in-memory value, the store copy
only matters after a crash.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from typing import Any, Protocol

from vsms.errors import JobCancelled, OperationFailed, VsmsError
from vsms.jobs.undo import UndoBook, UndoStep
from vsms.model.job import AffectedElement, JobRecord
from vsms.store.db import Store

log = logging.getLogger(__name__)


class OpContext(Protocol):
    """What a job body sees: JobContext in a job, a LocalContext for an operation that runs
    within the method call (``operations.undo.run_now``)."""

    job_id: str
    cancel_event: threading.Event

    def add_undo(self, step: UndoStep[Any]) -> int: ...

    def amend_undo(self, seq: int, step: UndoStep[Any]) -> None: ...

    def progress(self, percent: float) -> None: ...

    def status(self, text: str) -> None: ...

    def describe(self, text: str) -> None: ...

    def check_cancelled(self) -> None: ...

    def set_result(self, **values: Any) -> None: ...

    def add_affected(self, element: AffectedElement) -> None: ...


class Work(Protocol):
    """The body of a job, or of an operation run within the method call: raise to fail (the
    undo steps it recorded are replayed), call ``ctx.check_cancelled`` often. What its
    preparation reserved (a VM's transition) is handed to ``JobManager.submit(reservation=)``,
    which releases it however the job ends, also when it never ran.
    """

    def run(self, ctx: OpContext) -> None: ...


class JobContext:
    """Handed to ``Work.run``: progress, status, cancellation, undo journal, results."""

    PROGRESS_INTERVAL = 0.5
    """Minimum seconds between two writes of progress/status to the store."""

    def __init__(self, record: JobRecord, *, store: Store, lock: threading.Condition,
                 book: UndoBook[Any]) -> None:
        self.job_id = record.instance_id
        self.cancel_event = threading.Event()
        self.record = record
        self._store = store
        self._lock = lock
        self._book = book
        self._last_write = -math.inf
        self._dirty = False

    # -- for the work ---------------------------------------------------------------------

    def progress(self, percent: float) -> None:
        """Report PercentComplete: clamped to 0..100 and never lowered."""
        if math.isnan(percent):
            return
        value = int(min(100.0, max(0.0, percent)))
        with self._lock:
            if value > self.record.percent:
                self.record.percent = value
                self._dirty = True
                self._write_if_due()

    def status(self, text: str) -> None:
        """Set JobStatus, a short free-form text of what the job is doing."""
        with self._lock:
            if text != self.record.job_status:
                self.record.job_status = text
                self._dirty = True
                self._write_if_due()

    def describe(self, text: str) -> None:
        """Replace the job's Description (what the job found it must tell, e.g. an import's
        adapter left disconnected); written with the next progress write."""
        with self._lock:
            if text != self.record.description:
                self.record.description = text
                self._dirty = True
                self._write_if_due()

    def check_cancelled(self) -> None:
        """Raise ``JobCancelled`` if a Terminate/Kill request (or a shutdown) cancelled the job."""
        if self.cancel_event.is_set():
            raise JobCancelled(f"job {self.job_id} was cancelled")

    def add_undo(self, step: UndoStep[Any]) -> int:
        """Append a write-ahead undo record; it is committed to the store when this returns.

        Call it BEFORE the side effect it undoes. Returns the record's number (for
        ``amend_undo``). Raises ``OperationFailed`` for a step class the job manager's book
        does not know and ``InvalidParameter`` for fields that are not JSON.
        """
        self._known(step)
        with self._lock, self._store.transaction():
            seq = self._store.add_undo(self.job_id, step.kind, step.args())
            self.persist()
        return seq

    def amend_undo(self, seq: int, step: UndoStep[Any]) -> None:
        """Replace the undo record ``seq`` (written by ``add_undo`` before the side effect)
        with what the side effect revealed, e.g. the identity of a new file."""
        self._known(step)
        with self._lock:
            self._store.update_undo(self.job_id, seq, step.args())

    def _known(self, step: UndoStep[Any]) -> None:
        if not self._book.knows(step):
            raise OperationFailed(
                f"job {self.job_id} registered an undo step of unknown kind {step.kind!r}; known "
                f"kinds: {', '.join(sorted(self._book.kinds)) or 'none'} (a vsms bug)")

    def set_result(self, **values: Any) -> None:
        """Add out parameters; readable in ``JobRecord.result`` once the job has completed."""
        try:
            json.dumps(values)
        except (TypeError, ValueError) as exc:
            raise OperationFailed(
                f"job {self.job_id} set a result that is not JSON-serialisable: {exc} "
                "(a vsms bug)") from exc
        with self._lock:
            self.record.result.update(values)
            self._dirty = True

    def add_affected(self, element: AffectedElement) -> None:
        """Record an element the job affects (Msvm_AffectedJobElement); written at once."""
        with self._lock:
            self.record.affected.append(element)
            try:
                self.persist()
            except VsmsError:
                self._dirty = True
                log.warning("could not store the affected elements of job %s", self.job_id,
                            exc_info=True)

    # -- for the manager ------------------------------------------------------------------

    def persist(self) -> None:
        """Write the record to the store now. The caller holds the lock; errors propagate."""
        self._store.save_job(self.record)
        self._dirty = False
        self._last_write = time.monotonic()

    def _write_if_due(self) -> None:
        if not self._dirty or time.monotonic() - self._last_write < self.PROGRESS_INTERVAL:
            return
        try:
            self.persist()
        except VsmsError:
            # progress is advisory: the job carries on, the next write tries again
            log.warning("could not store the progress of job %s", self.job_id, exc_info=True)
