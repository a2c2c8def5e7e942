"""Benchmark: export with storage and import with copy of a big sparse VM disk, against cp.

A VM is defined through the service with one dynamic VHD (default 10 GiB with 1 GiB of data in
16 runs). Each repetition, in the same run and with the page cache equally warm for both:

* ``cp --sparse=always`` of the VM's disk + fsync, then ExportVirtualSystem with storage (the
  job: copy, SHA-256 manifest, config, .exp, publish; every file fsynced);
* ``cp --sparse=always`` of the exported disk + fsync, then ImportVirtualSystemEx with
  CreateCopy (the job: checks, manifest verification, copy, define);
* an in-place ImportVirtualSystem of the same export (verification only, no copy).

``--digests unknown`` (the default) empties the service's digest book (``vsms.disks.digests``)
before each job, as on a host that never hashed these files: each job hashes the data once.
``--digests known`` keeps the digests this host recorded (the VM disk is hashed once by an
untimed export first): the export of the unchanged VM disk and the import of this host's own
export then hash nothing, they only copy.

fsync is included on both sides. The order of cp and the job alternates between repetitions,
and every timed step starts alike: the copy the step before made is deleted, ``sync`` runs and
the disk rests ``--settle`` seconds (see ``one_repetition``). It prints the per-repetition
times, the median of the job/cp ratios against the targets, the allocated sizes of the copies
against the source (sparse within 5%), and a breakdown measured on the same disk: kernel copy
alone, SHA-256 alone, and the copy that hashes while it copies. Every VM it made is undefined
and every file removed. Not part of the test suite.

    .venv/bin/python bench/bench_export_import.py [--dir /var/tmp] [--size-gib 10]
        [--data-gib 1] [--repeat 5] [--settle 5] [--digests unknown|known]
        [--uri qemu:///system]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchlib import (
    GIB,
    MIB,
    BenchError,
    Rig,
    allocated,
    cp_reference,
    machine,
    make_vhd,
    median,
    ratio_row,
    row,
    stop_on_sigterm,
    sync,
    timed,
    world_dir,
)

from vsms.disks import copy as diskcopy
from vsms.errors import VsmsError

TARGET = 1.15
DIGESTS = ("unknown", "known")
SPARSE = 0.05


def parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--dir", type=Path, default=Path("/var/tmp"), help="parent of the storage root")
    p.add_argument("--size-gib", type=float, default=10.0, help="virtual size of the VHD")
    p.add_argument("--data-gib", type=float, default=1.0, help="data written into the VHD")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--uri", default="qemu:///system")
    p.add_argument("--settle", type=float, default=5.0,
                   help="seconds of rest (after sync) before each timed step")
    p.add_argument("--digests", choices=DIGESTS, default="unknown",
                   help="whether the service knows the digests of the files it reads")
    return p


def breakdown(src: Path, work: Path, repeat: int) -> dict[str, list[float]]:
    """Seconds of the parts of the work on ``src``: copy alone, hash alone, copy + hash."""
    out: dict[str, list[float]] = {"copy_file (kernel copy + fsync)": [],
                                   "sha256_file (hash only)": [],
                                   "copy_and_hash (one pass + fsync)": []}
    for i in range(repeat):
        dst = work / f"part-{i}.vhd"

        def copy(d: Path = dst) -> int:
            return diskcopy.copy_file(str(src), str(d))

        def fused(d: Path = dst) -> tuple[int, str]:
            return diskcopy.copy_and_hash(str(src), str(d))

        out["copy_file (kernel copy + fsync)"].append(timed(copy)[0])
        dst.unlink()
        out["sha256_file (hash only)"].append(timed(lambda: diskcopy.sha256_file(str(src)))[0])
        out["copy_and_hash (one pass + fsync)"].append(timed(fused)[0])
        dst.unlink()
    return {k: v for k, v in out.items() if v}


def check_sparse(label: str, copy: Path, source: Path, problems: list[str]) -> str:
    """The copy may not have more than 5% more allocated than the source (it stayed sparse).
    It may have less: XFS shows speculative preallocation beyond the end of a freshly written
    source, and unwritten extents that SEEK_DATA may call data, neither of which a clone or a
    copy inherits; that the copy holds all the data is checked by its SHA-256 instead."""
    a, b = allocated(copy), allocated(source)
    off = (a - b) / max(b, 1)
    if off > SPARSE:
        problems.append(f"{label} is {a} bytes allocated, the source {b} ({off:+.1%})")
    return f"  {label:<42} {a / MIB:10.1f} MiB allocated ({off:+.2%} vs source)"


def one_repetition(rig: Rig, guid: str, src: Path, i: int, opts: Options,
                   times: dict[str, list[float]], sizes: list[str] | None,
                   problems: list[str]) -> None:
    """cp and export, cp and import with copy (the order of each pair alternates with ``i``),
    then an in-place import. Each timed step starts in the same state: the copy the previous
    step made was deleted (the export stays for the imports), ``sync`` ran and the disk had
    ``opts.settle`` seconds of rest; this machine's virtual disk takes bursts of about 3 GiB at
    full speed and then slows down to about a third, which would otherwise penalise whichever
    step of a pair runs second. With ``sizes`` the copies are also checked (sparse, content)."""
    rep = world_dir(rig.root / f"rep{i}")
    exp_root, imp = world_dir(rep / "export"), world_dir(rep / "import")
    ref = rep / "cp.vhd"
    exp = exp_root / f"bench-{rig.token}"
    exp_disk = exp / "Virtual Hard Disks" / src.name
    label = f"cp {' '.join(opts.cp_options or ('--sparse=always',))} copy"

    def cp(source: Path) -> float:
        elapsed = cp_reference(source, ref, *opts.cp_options)
        if sizes is not None and source == src:
            sizes.append(check_sparse(label, ref, src, problems))
        ref.unlink()
        return elapsed

    def export() -> float:
        elapsed = rig.export(guid, exp_root)[0]
        if sizes is not None:
            sizes.append(check_sparse("exported disk", exp_disk, src, problems))
            if diskcopy.sha256_file(str(exp_disk)) != diskcopy.sha256_file(str(src)):
                problems.append("the exported disk differs from the source")
        return elapsed

    def import_copy() -> float:
        elapsed, vm = rig.import_copy(exp, [imp / src.name], f"bench-{rig.token}-copy{i}")
        if sizes is not None:
            sizes.append(check_sparse("imported copy", imp / src.name, src, problems))
            if diskcopy.sha256_file(str(imp / src.name)) != diskcopy.sha256_file(str(src)):
                problems.append("the imported copy differs from the source")
        rig.forget(vm)
        (imp / src.name).unlink()
        return elapsed

    def cold(fn: Callable[[], float]) -> Callable[[], float]:
        def run() -> float:
            if opts.digests == "unknown":
                rig.svc.store.forget_digests()  # as on a host that never hashed these files
            return fn()
        return run

    pairs: list[list[tuple[str, Callable[[], float]]]] = [
        [("cp_src", lambda: cp(src)), ("export", cold(export))],
        [("cp_exp", lambda: cp(exp_disk)), ("import", cold(import_copy))]]
    for pair in pairs:
        for key, fn in pair if i % 2 == 0 else reversed(pair):
            settle(opts.settle)
            times[key].append(fn())
    settle(opts.settle)
    times["inplace"].append(cold(lambda: rig.import_in_place(exp)[0])())
    for g in list(rig.guids - {guid}):
        rig.forget(g)
    shutil.rmtree(rep)


def settle(seconds: float) -> None:
    sync()
    time.sleep(seconds)


@dataclass(frozen=True)
class Options:
    cp_options: tuple[str, ...] = ()  # the cp reference's options (default --sparse=always)
    settle: float = 5.0  # seconds of rest before each timed step
    digests: str = "unknown"  # "known": keep the digests the service recorded (DIGESTS)


@dataclass
class Result:
    times: dict[str, list[float]]  # cp_src, export, cp_exp, import, inplace: one per repetition
    problems: list[str]


def measure(rig: Rig, size: int, data: int, repeat: int, *, opts: Options = Options(),
            limit: float | None = TARGET) -> Result:
    """Run the repetitions on ``rig``; print the report; return the times and problems."""
    vms = world_dir(rig.root / "vms")
    src = vms / "big.vhd"
    make_vhd(src, size, data)
    guid = rig.define_vm(f"bench-{rig.token}", [src])
    print(f"source: {src} ({src.stat().st_size / GIB:.2f} GiB file, {size / GIB:g} GiB virtual, "
          f"{diskcopy.data_bytes(str(src)) / GIB:.2f} GiB of data, "
          f"{allocated(src) / GIB:.2f} GiB allocated)")
    if opts.digests == "known":  # an untimed export hashes the VM disk once
        prime = world_dir(rig.root / "prime")
        rig.export(guid, prime)
        shutil.rmtree(prime)
    print(f"digests {opts.digests} to the service")
    times: dict[str, list[float]] = {k: [] for k in
                                     ("cp_src", "export", "cp_exp", "import", "inplace")}
    problems: list[str] = []
    sizes: list[str] = []
    for i in range(repeat):
        one_repetition(rig, guid, src, i, opts, times, sizes if i == 0 else None, problems)
        print(f"  repetition {i + 1}/{repeat} done", flush=True)
    parts = breakdown(src, world_dir(rig.root / "parts"), repeat)
    ref_label = "cp " + " ".join(opts.cp_options or ("--sparse=always",)) + " + fsync"
    print(f"machine: {machine()}")
    print("times (seconds, fsync included everywhere):")
    print(row(f"{ref_label} (VM disk)", times["cp_src"]))
    print(row("ExportVirtualSystem job", times["export"]))
    print(row(f"{ref_label} (exported disk)", times["cp_exp"]))
    print(row("ImportVirtualSystemEx CreateCopy job", times["import"]))
    print(row("ImportVirtualSystem in place (verify only)", times["inplace"]))

    print("breakdown, on the VM disk:")
    for label, values in parts.items():
        print(row(label, values))
    print("ratios (job / cp of the same file, same repetition):")
    print(ratio_row("export / cp", times["export"], times["cp_src"], limit))
    print(ratio_row("import with copy / cp", times["import"], times["cp_exp"], limit))

    print(f"sparseness (limit {SPARSE:.0%}):")
    for line in sizes:
        print(line)
    if limit is not None:
        for key, ref_key in (("export", "cp_src"), ("import", "cp_exp")):
            ratios = [a / b for a, b in zip(times[key], times[ref_key], strict=True)]
            if median(ratios) > limit:
                problems.append(f"{key} is {median(ratios):.2f}x cp, above {limit}x")
    return Result(times, problems)


def main(argv: list[str] | None = None) -> int:
    stop_on_sigterm()
    args = parser(__doc__ or "").parse_args(argv)
    size, data = int(args.size_gib * GIB), int(args.data_gib * GIB)
    try:
        with Rig(args.dir, args.uri) as rig:
            problems = measure(rig, size, data, args.repeat,
                               opts=Options(settle=args.settle,
                                            digests=args.digests)).problems
    except (BenchError, VsmsError) as exc:  # VsmsError: e.g. libvirt unreachable
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    for p in problems:
        print(f"PROBLEM: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
