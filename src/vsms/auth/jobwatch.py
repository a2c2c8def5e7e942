"""Writes the outcome line of each job an audited method call started (ReturnValue 4096).

One background thread, alive only while some job is being watched, reads every watched job
through the registry each ``interval`` seconds; once JobState is final (Completed, Terminated,
Killed, Exception) it writes ``{"event": "job", "job", "job_state", "error_code",
"error_description", ...the user, source, class and method of the call}``. A job that
disappears, is still running after ``give_up_after`` seconds, or is being watched when the
server stops gets a line saying its outcome was not seen.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import pywbem

from vsms.auth.audit import AuditLog
from vsms.cim.enums import JobState
from vsms.providers.registry import Registry

log = logging.getLogger("vsms.audit")


@dataclass
class _Watched:
    namespace: str
    path: pywbem.CIMInstanceName
    context: dict[str, Any]
    since: float


class JobWatcher:
    def __init__(self, registry: Registry, audit: AuditLog, *, interval: float = 0.5,
                 give_up_after: float = 24 * 3600.0) -> None:
        self.registry = registry
        self.audit = audit
        self.interval = interval
        self.give_up_after = give_up_after
        self._lock = threading.Lock()
        self._jobs: dict[str, _Watched] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, namespace: str, path: pywbem.CIMInstanceName,
              context: dict[str, Any]) -> None:
        """Write the outcome line of the job at ``path`` once it has ended."""
        job_id = str(path.keybindings.get("InstanceID", path))
        with self._lock:
            self._jobs[job_id] = _Watched(namespace, path, context, time.monotonic())
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="vsms-audit-jobs",
                                                daemon=True)
                self._thread.start()

    def pending(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    def close(self, timeout: float = 5.0) -> None:
        """Stop watching; jobs still running get an "outcome not seen" line."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            left, self._jobs = self._jobs, {}
            self._thread = None
        for job_id, w in left.items():
            self._unseen(job_id, w, "the server stopped before the job ended")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                jobs = list(self._jobs.items())
                if not jobs:
                    self._thread = None
                    return
            for job_id, w in jobs:
                if self._stop.is_set():
                    return
                try:
                    done = self._check(job_id, w)
                except Exception:  # a watcher must never die of one job
                    log.exception("audit: cannot read job %s", job_id)
                    done = False
                if done:
                    with self._lock:
                        self._jobs.pop(job_id, None)

    def _check(self, job_id: str, w: _Watched) -> bool:
        try:
            job = self.registry.get_instance(w.namespace, w.path)
        except pywbem.CIMError as exc:
            if exc.status_code != pywbem.CIM_ERR_NOT_FOUND:
                raise
            self._unseen(job_id, w, "the job record disappeared before its outcome was seen")
            return True
        state = _value(job, "JobState")
        if state is not None and state in {int(s) for s in JobState if s.finished}:
            self.audit.write("job", job=job_id, job_state=state,
                             job_state_name=JobState(state).name.title(),
                             error_code=_value(job, "ErrorCode"),
                             error_description=_value(job, "ErrorDescription") or "",
                             **w.context)
            return True
        if time.monotonic() - w.since > self.give_up_after:
            self._unseen(job_id, w, f"still running after {self.give_up_after:g} s")
            return True
        return False

    def _unseen(self, job_id: str, w: _Watched, why: str) -> None:
        self.audit.write("job", job=job_id, job_state=None, error_code=None,
                         note=f"outcome not seen: {why}", **w.context)


def _value(inst: pywbem.CIMInstance, name: str) -> Any:
    prop = inst.properties.get(name)
    if prop is None or prop.value is None:
        return None
    return int(prop.value) if isinstance(prop.value, int) else str(prop.value)
