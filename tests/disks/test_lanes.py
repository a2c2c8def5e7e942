"""Copies of disks on different devices run at the same time; on one device, one after another.

The two devices are the ext4 disk under /var/tmp and the tmpfs of /dev/shm. Concurrency is proven
with a barrier in the progress callbacks: two copies that do not overlap in time cannot both reach
it and the test fails on its timeout.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.disks.craft import MIB, sparse_file
from vsms.disks import copy as diskcopy
from vsms.disks.api import ProgressFn
from vsms.disks.lanes import CopyTask, device_of, plan, run_lanes
from vsms.errors import JobCancelled, OperationFailed

SHM = Path("/dev/shm")


@pytest.fixture
def two_devices() -> Iterator[tuple[Path, Path]]:
    if not SHM.is_dir():
        pytest.skip("no /dev/shm")
    token = uuid.uuid4().hex[:8]
    a, b = Path("/var/tmp/vsms-tests") / f"lanes-{token}", SHM / f"vsms-lanes-{token}"
    for d in (a, b):
        d.mkdir(parents=True)
    if device_of(str(a)) == device_of(str(b)):
        pytest.skip("/var/tmp and /dev/shm are on one device here")
    yield a, b
    for d in (a, b):
        shutil.rmtree(d, ignore_errors=True)


def disk(path: Path, mib: int = 24) -> str:
    sparse_file(path, 4 * mib * MIB, [(MIB, os.urandom(mib * MIB))])
    return hashlib.sha256(path.read_bytes()).hexdigest()


def hashing(src: Path, dst: Path, meet: threading.Barrier | None = None,
            seen: list[str] | None = None) -> CopyTask[tuple[int, str]]:
    def run(progress: ProgressFn, cancel: threading.Event) -> tuple[int, str]:
        met: list[bool] = []

        def on_bytes(n: int) -> None:
            if meet is not None and n > 0 and not met:
                met.append(True)
                meet.wait()  # both copies must be under way at once
            if seen is not None:
                seen.append(threading.current_thread().name)
            progress(n)
        return diskcopy.copy_and_hash(str(src), str(dst), progress=on_bytes, cancel=cancel)
    return CopyTask(str(src), str(dst), run)


def test_disks_on_two_devices_are_copied_at_the_same_time(two_devices: tuple[Path, Path]
                                                          ) -> None:
    a, b = two_devices
    truth = [disk(a / "one.vhd"), disk(b / "two.vhd")]
    meet = threading.Barrier(2, timeout=20)
    tasks = [hashing(a / "one.vhd", a / "one-copy.vhd", meet),
             hashing(b / "two.vhd", b / "two-copy.vhd", meet)]
    assert plan(tasks) == [[0], [1]]
    totals: list[int] = []
    results = run_lanes(tasks, progress=totals.append)
    assert [digest for _, digest in results] == truth  # in the order of the tasks
    assert totals == sorted(totals) and totals[-1] == sum(n for n, _ in results)
    assert hashlib.sha256((b / "two-copy.vhd").read_bytes()).hexdigest() == truth[1]


def test_disks_on_one_device_are_copied_in_turn(two_devices: tuple[Path, Path]) -> None:
    a, _ = two_devices
    for name in ("one", "two", "three"):
        disk(a / f"{name}.vhd", 8)
    active, peak = [0], [0]
    lock = threading.Lock()

    def counted(name: str) -> CopyTask[int]:
        def run(progress: ProgressFn, cancel: threading.Event) -> int:
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            try:
                return diskcopy.copy_file(str(a / f"{name}.vhd"), str(a / f"{name}-c.vhd"),
                                          progress=progress, cancel=cancel)
            finally:
                with lock:
                    active[0] -= 1
        return CopyTask(str(a / f"{name}.vhd"), str(a / f"{name}-c.vhd"), run)

    tasks = [counted(n) for n in ("one", "two", "three")]
    assert plan(tasks) == [[0, 1, 2]]
    assert len(run_lanes(tasks)) == 3 and peak[0] == 1


def test_a_failing_copy_stops_the_others_and_leaves_no_copy(two_devices: tuple[Path, Path]
                                                            ) -> None:
    a, b = two_devices
    disk(a / "one.vhd", 64)
    disk(b / "two.vhd", 8)

    def broken(progress: ProgressFn, cancel: threading.Event) -> tuple[int, str]:
        diskcopy.copy_file(str(b / "two.vhd"), str(b / "two-copy.vhd"), progress=progress,
                           cancel=cancel)
        os.unlink(b / "two-copy.vhd")
        raise OperationFailed("the target device went away")

    tasks = [hashing(a / "one.vhd", a / "one-copy.vhd"),
             CopyTask(str(b / "two.vhd"), str(b / "two-copy.vhd"), broken)]
    with pytest.raises(OperationFailed, match="went away"):
        run_lanes(tasks)
    assert sorted(p.name for p in a.iterdir()) == ["one.vhd"]
    assert sorted(p.name for p in b.iterdir()) == ["two.vhd"]


def test_cancelling_the_job_stops_every_lane(two_devices: tuple[Path, Path]) -> None:
    a, b = two_devices
    disk(a / "one.vhd", 64)
    disk(b / "two.vhd", 64)
    job_cancel = threading.Event()
    names: list[str] = []
    tasks = [hashing(a / "one.vhd", a / "one-copy.vhd", seen=names),
             hashing(b / "two.vhd", b / "two-copy.vhd", seen=names)]

    def cancel_soon(progress: ProgressFn) -> ProgressFn:
        def on_bytes(n: int) -> None:
            job_cancel.set()
            progress(n)
        return on_bytes

    first = tasks[0]
    tasks[0] = CopyTask(first.src, first.dst,
                        lambda progress, cancel: first.run(cancel_soon(progress), cancel))
    with pytest.raises(JobCancelled):
        run_lanes(tasks, cancel=job_cancel)
    assert sorted(p.name for p in a.iterdir()) == ["one.vhd"]
    assert sorted(p.name for p in b.iterdir()) == ["two.vhd"]
    assert all(n.startswith("vsms-lane") for n in names)


def test_a_job_cancelled_before_the_copies_starts_none(two_devices: tuple[Path, Path]) -> None:
    a, b = two_devices
    disk(a / "one.vhd", 4)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(JobCancelled):
        run_lanes([hashing(a / "one.vhd", a / "one-copy.vhd")], cancel=cancel)
    assert not (a / "one-copy.vhd").exists()
    assert run_lanes([]) == []
