"""Copy several disks at once when they are on different devices.

A job that moves several disks (an export with storage, an import with copy) hands each copy
to :func:`run_lanes` as a :class:`CopyTask`. Copies are grouped into lanes by the pair (device of
the source file, device of the target's folder): copies in one lane share both devices and run
one after the other (two copies on one disk only make it seek); lanes run in parallel, at most
MAX_LANES at a time, so two disks on two devices take as long as the longer one.

Progress is the sum of the bytes every copy reported, sent monotonically to one callback.
When a copy fails, the others stop at their next chunk and the first real error is raised; a
cancellation of the job (``cancel``) reaches every copy at its next chunk and raises
JobCancelled. Each task removes its own partial target (``vsms.disks.copy`` does).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from vsms.disks.api import ProgressFn
from vsms.errors import JobCancelled

MAX_LANES = 4

T = TypeVar("T")


@dataclass(frozen=True)
class CopyTask(Generic[T]):
    """One copy: ``run(progress, cancel)`` copies ``src`` to ``dst`` and returns its result."""

    src: str
    dst: str
    run: Callable[[ProgressFn, threading.Event], T]


def device_of(path: str) -> int:
    """The device holding ``path``, or for a file not made yet, its nearest existing folder."""
    probe = os.path.abspath(path)
    while True:
        try:
            return os.stat(probe).st_dev
        except FileNotFoundError:
            parent = os.path.dirname(probe)
            if parent == probe:
                raise
            probe = parent


def plan(tasks: Sequence[CopyTask[T]]) -> list[list[int]]:
    """Indexes of ``tasks`` per lane, each lane in the order given (lanes in order of first
    appearance)."""
    lanes: dict[tuple[int, int], list[int]] = {}
    for i, task in enumerate(tasks):
        target = os.path.dirname(os.path.abspath(task.dst))
        lanes.setdefault((device_of(task.src), device_of(target)), []).append(i)
    return list(lanes.values())


class _Sum:
    """Bytes done per task, summed and reported monotonically (thread-safe)."""

    def __init__(self, report: ProgressFn | None, count: int) -> None:
        self._report, self._done, self._sent = report, [0] * count, -1
        self._lock = threading.Lock()

    def of(self, i: int, outer: threading.Event | None, stop: threading.Event) -> ProgressFn:
        def on_bytes(n: int) -> None:
            if outer is not None and outer.is_set():
                stop.set()  # the job was cancelled: every lane stops at its next chunk
            with self._lock:
                self._done[i] = max(self._done[i], n)
                total = sum(self._done)
                if self._report is not None and total > self._sent:
                    self._sent = total
                    self._report(total)
        return on_bytes


def run_lanes(tasks: Sequence[CopyTask[T]], *, progress: ProgressFn | None = None,
              cancel: threading.Event | None = None,
              max_lanes: int = MAX_LANES) -> list[T]:
    """Run every task (see the module docstring); their results in the order of ``tasks``."""
    lanes = plan(tasks)
    stop = threading.Event()
    if cancel is not None and cancel.is_set():
        stop.set()
    counter = _Sum(progress, len(tasks))
    results: dict[int, T] = {}
    errors: list[tuple[int, BaseException]] = []
    lock = threading.Lock()

    def lane(indexes: list[int]) -> None:
        for i in indexes:
            if cancel is not None and cancel.is_set():
                stop.set()
            if stop.is_set():
                return
            try:
                value = tasks[i].run(counter.of(i, cancel, stop), stop)
            except BaseException as exc:  # handed to the caller's thread below
                stop.set()
                with lock:
                    errors.append((i, exc))
                return
            with lock:
                results[i] = value

    if len(lanes) <= 1:
        for indexes in lanes:
            lane(indexes)
    else:
        with ThreadPoolExecutor(max_workers=min(max_lanes, len(lanes)),
                                thread_name_prefix="vsms-lane") as pool:
            for future in [pool.submit(lane, indexes) for indexes in lanes]:
                future.result()
    if errors:
        real = [exc for _, exc in sorted(errors, key=lambda e: e[0])
                if not isinstance(exc, JobCancelled)]
        raise real[0] if real else errors[0][1]
    if len(results) != len(tasks):  # stopped before some task began: only by a cancellation
        raise JobCancelled("the copy of the disks was cancelled on request")
    return [results[i] for i in range(len(tasks))]
