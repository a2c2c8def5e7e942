"""Benchmark: vsms.disks.copy.copy_file against ``cp --sparse=always`` on a big sparse file.

Makes a sparse file (default 10 GiB with 1 GiB of random data in 16 extents of 64 MiB), copies
it with both methods in the same run (each copy fsynced, so both pay for reaching the disk),
checks that the copies are sparse and identical (sha256 of the data), prints the times and the
ratio, and removes every file it made. Not part of the test suite.

    .venv/bin/python bench/bench_copy.py [--dir /var/tmp] [--size-gib 10] [--data-gib 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchlib import fsync_path

from vsms.disks.copy import copy_file, data_bytes, sha256_file

MIB = 1024 * 1024
GIB = 1024 * MIB
EXTENT = 64 * MIB


def make_source(path: Path, size: int, data: int) -> None:
    """``data`` bytes of random data spread evenly over a sparse file of ``size`` bytes."""
    extents = max(1, data // EXTENT)
    stride = size // extents
    block = os.urandom(MIB)
    with open(path, "wb") as f:
        for i in range(extents):
            f.seek(i * stride)
            for j in range(EXTENT // MIB):
                f.write(block[j:] + block[:j])  # a different block each time
        f.truncate(size)
        f.flush()
        os.fsync(f.fileno())


def timed(label: str, run: Callable[[], object]) -> float:
    subprocess.run(["sync"], check=True, timeout=600)
    start = time.monotonic()
    run()
    elapsed = time.monotonic() - start
    print(f"{label:<28} {elapsed:7.2f} s")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/var/tmp", help="where to make the files")
    parser.add_argument("--size-gib", type=float, default=10.0)
    parser.add_argument("--data-gib", type=float, default=1.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vsms-bench-", dir=args.dir))
    try:
        src, ours, theirs = work / "src.raw", work / "copy_file.raw", work / "cp.raw"
        make_source(src, int(args.size_gib * GIB), int(args.data_gib * GIB))
        data = data_bytes(str(src))
        print(f"source: {src.stat().st_size / GIB:.1f} GiB apparent, {data / GIB:.2f} GiB data")
        t_ours = timed("copy_file (incl. fsync)", lambda: copy_file(str(src), str(ours)))

        def cp() -> None:
            subprocess.run(["cp", "--sparse=always", str(src), str(theirs)], check=True,
                           timeout=3600)
            fsync_path(theirs)

        t_cp = timed("cp --sparse=always + fsync", cp)
        for p in (ours, theirs):
            print(f"  {p.name:<16} allocated {p.stat().st_blocks * 512 / GIB:.3f} GiB")
        same = sha256_file(str(src)) == sha256_file(str(ours)) == sha256_file(str(theirs))
        print(f"identical: {same}")
        print(f"ratio copy_file / cp: {t_ours / t_cp:.2f} "
              f"(copy_file {data / t_ours / MIB:.0f} MiB/s of data, cp {data / t_cp / MIB:.0f})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
