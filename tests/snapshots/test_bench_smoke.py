"""bench/bench_snapshot.py runs end to end with tiny sizes and leaves nothing behind (ratios
on tiny disks mean nothing: exit code 1, a target missed, is fine; 2, a failed run, is not)."""

from __future__ import annotations

import pytest

from tests.bench.test_bench_disk_scripts_smoke import assert_nothing_left, run_script

pytestmark = pytest.mark.qemu


def test_snapshot_benchmark_smoke(qemu_uri: str) -> None:
    out = run_script("bench_snapshot.py", "--repeat", "1", "--big-gib", "0.5", "--small-gib",
                     "0.25", "--data-gib", "0.02", "--merge-gib", "0.02", "--merge-disk-gib",
                     "0.1", "--uri", qemu_uri)
    for heading in ("create big", "apply small", "create: big / small",
                    "RemoveVirtualSystemSnapshot job", "qemu-img commit -d"):
        assert heading in out, out
    assert_nothing_left(out, qemu_uri)
