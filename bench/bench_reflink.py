"""Benchmark: export and import with copy on a reflink filesystem (a loop-mounted XFS).

Needs root, ``mkfs.xfs`` (xfsprogs) and loop devices. It makes a sparse image file under
``--dir``, formats it ``mkfs.xfs -m reflink=1``, mounts it with ``-o loop`` and puts the storage
root of a throw-away service on it. Then, for each virtual size of ``--sizes-gib`` (same amount
of data each time) and for digests unknown and known to the service, it runs the repetitions
of bench_export_import.py with
``cp --reflink=always`` + fsync as the physical reference: the copies are FICLONEs. With the
digests unknown (the service's digest book emptied first, as on a host that never hashed the
disk) what is left is one SHA-256 pass over the data per job (the export hashes the clone's
shared data for the manifest; the import hashes the export's disk to verify it and clones it).
With the digests this host recorded (the VM disk unchanged since it was last hashed, the export
written here) neither job hashes anything. It prints the times, the breakdown (clone alone, hash
alone, clone + hash) and whether each job with known digests stays under ``--limit`` seconds.
It unmounts and deletes the image at the end, also on errors.
Not part of the test suite.

    sudo .venv/bin/python bench/bench_reflink.py [--dir /var/tmp] [--sizes-gib 10,100]
        [--data-gib 1] [--repeat 3] [--limit 1.0] [--uri qemu:///system]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from bench_export_import import DIGESTS, Options, measure
from benchlib import GIB, BenchError, Rig, median, stop_on_sigterm, world_dir

from vsms.errors import VsmsError
from vsms.testing import loopfs


@contextlib.contextmanager
def loop_xfs(parent: Path, size: int) -> Iterator[Path]:
    """A freshly made XFS with reflink, mounted on a new directory under ``parent``."""
    if os.geteuid() != 0:
        raise BenchError("mounting a loop XFS needs root")
    if shutil.which("mkfs.xfs") is None:
        raise BenchError("mkfs.xfs is missing: apt-get install xfsprogs")
    try:
        with loopfs.loop_xfs(world_dir(parent), size, prefix="vsms-bench-xfs") as mnt:
            yield mnt
    except subprocess.CalledProcessError as exc:
        raise BenchError(f"{' '.join(map(str, exc.cmd))} failed: {exc.stderr!r}") from exc


def main(argv: list[str] | None = None) -> int:
    stop_on_sigterm()
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--dir", type=Path, default=Path("/var/tmp"), help="where the image lives")
    p.add_argument("--sizes-gib", default="10,100", help="virtual sizes of the VHD to try")
    p.add_argument("--data-gib", type=float, default=1.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--limit", type=float, default=1.0, help="seconds a job should stay under")
    p.add_argument("--uri", default="qemu:///system")
    p.add_argument("--settle", type=float, default=1.0,
                   help="seconds of rest (after sync) before each timed step")
    args = p.parse_args(argv)
    sizes = [int(float(s) * GIB) for s in args.sizes_gib.split(",") if s.strip()]
    data = int(args.data_gib * GIB)
    # room for the source, its clones (shared) and the cp --sparse run of each repetition
    image_size = max(4 * GIB, 3 * data + 2 * GIB)
    problems: list[str] = []
    try:
        with loop_xfs(args.dir, image_size) as mnt:
            for size in sizes:
                for digests in DIGESTS:
                    print(f"== XFS (reflink=1) on a loop device; VHD of {size / GIB:g} GiB "
                          f"virtual; digests {digests}")
                    root = mnt / f"root-{size // GIB}-{digests}"
                    with Rig(mnt, args.uri, root=root) as rig:
                        result = measure(rig, size, data, args.repeat, limit=None,
                                         opts=Options(("--reflink=always",), args.settle,
                                                      digests))
                    shutil.rmtree(root, ignore_errors=True)
                    problems += result.problems
                    for key in ("export", "import", "inplace"):
                        value = median(result.times[key])
                        if digests == "unknown":  # one SHA-256 pass over the data per job
                            print(f"  {key} job, digests unknown: median {value:.3f} s")
                            continue
                        verdict = "OK" if value < args.limit else f"ABOVE {args.limit:g} s"
                        print(f"  {key} job, digests known: median {value:.3f} s: {verdict}")
                        if value >= args.limit:
                            problems.append(f"{key} of a {size / GIB:g} GiB disk took "
                                            f"{value:.2f} s with its digests known")
    except (BenchError, VsmsError) as exc:  # VsmsError: e.g. libvirt unreachable
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    for line in problems:
        print(f"PROBLEM: {line}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
