"""Benchmark: snapshot create / apply against disk size, and remove-with-merge against qemu-img.

Two turned-off VMs, each with one dynamic VHD holding the same amount of data (default 2 GiB in
16 runs): a big disk (default 100 GiB virtual) and a small one (default 10 GiB). Per repetition
and VM, in alternating order: CreateVirtualSystemSnapshot, then ApplyVirtualSystemSnapshotEx of
that snapshot, each timed from the method call to the end of its job; then the snapshot is
removed (not timed). Targets: each below 1 s, and the big / small ratio of the medians at most
1.2 (creating an overlay writes a header only, whatever the size of the disk).

Merge: a VM with a dynamic VHD takes a snapshot, then ``--merge-gib`` (default 1 GiB) is written
into its current overlay by qemu-io; RemoveVirtualSystemSnapshot merges that overlay into the
VHD (timed from the call to the end of the job). In the same repetition the same files are
built again outside the service (a VHD, an overlay on it, the same writes) and ``qemu-img
commit`` of that overlay is timed. Target: the removal at most 1.2x the commit.

Every VM and file it made is removed. Not part of the test suite.

    .venv/bin/python bench/bench_snapshot.py [--dir /var/tmp] [--repeat 3] [--big-gib 100]
        [--small-gib 10] [--data-gib 2] [--merge-gib 1] [--uri qemu:///system]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pywbem
from benchlib import (
    GIB,
    MIB,
    BenchError,
    Rig,
    machine,
    make_vhd,
    median,
    ratio_row,
    row,
    run,
    stop_on_sigterm,
    sync,
    world_dir,
)

from vsms.cim import names
from vsms.errors import VsmsError

LIMIT_SECONDS = 1.0
SIZE_RATIO = 1.2
MERGE_RATIO = 1.2


def vm_path(guid: str) -> pywbem.CIMInstanceName:
    return pywbem.CIMInstanceName(names.COMPUTER_SYSTEM, keybindings={
        "CreationClassName": names.COMPUTER_SYSTEM, "Name": guid}, namespace=names.NAMESPACE)


def settings(iid: str) -> pywbem.CIMInstanceName:
    return pywbem.CIMInstanceName(names.VSSD, keybindings={"InstanceID": iid},
                                  namespace=names.NAMESPACE)


def create(rig: Rig, guid: str) -> tuple[float, str]:
    start = time.monotonic()
    rv, out = rig.client.vsms("CreateVirtualSystemSnapshot", SourceSystem=vm_path(guid))
    if rv != 4096:
        raise BenchError(f"CreateVirtualSystemSnapshot returned {rv}")
    rec = rig.svc.jobs.wait(str(out["Job"].keybindings["InstanceID"]), 600)
    elapsed = time.monotonic() - start
    if rec.state.name != "COMPLETED":
        raise BenchError(f"CreateVirtualSystemSnapshot ended {rec.state.name}: "
                         f"{rec.error_description}")
    return elapsed, str(out["SnapshotSettingData"].keybindings["InstanceID"])


def current_disk(rig: Rig, guid: str) -> str:
    vs = rig.svc.host.get_system(guid)
    if vs is None or len(vs.disk_media()) != 1:
        raise BenchError(f"VM {guid} has no single disk")
    return vs.disk_media()[0].path


def write(path: str, fmt: str, size: int) -> None:
    run(["qemu-io", "-f", fmt, "-c", f"write -P 7 0 {max(1, size // MIB)}M", path],
        timeout=3600)


def size_part(rig: Rig, args: argparse.Namespace) -> int:
    vms = world_dir(rig.root / "vms")
    data = int(args.data_gib * GIB)
    guids = {}
    for label, gib in (("big", args.big_gib), ("small", args.small_gib)):
        disk = vms / f"{label}.vhd"
        make_vhd(disk, int(gib * GIB), data)
        guids[label] = rig.define_vm(f"bench-{label}-{rig.token}", [disk])
    times: dict[str, list[float]] = {f"{op} {lb}": [] for op in ("create", "apply")
                                     for lb in guids}
    for i in range(args.repeat):
        order = ["big", "small"] if i % 2 == 0 else ["small", "big"]
        for label in order:
            guid = guids[label]
            sync()
            took, iid = create(rig, guid)
            times[f"create {label}"].append(took)
            sync()
            took, _ = rig.job("ApplyVirtualSystemSnapshotEx", ComputerSystem=vm_path(guid),
                              SnapshotSettingData=settings(iid))
            times[f"apply {label}"].append(took)
            rig.job("RemoveVirtualSystemSnapshotTree", SnapshotSettingData=settings(iid))
    print(f"create / apply a snapshot ({args.data_gib:g} GiB of data; big {args.big_gib:g} "
          f"GiB, small {args.small_gib:g} GiB), {args.repeat} repetition(s):")
    for label, values in times.items():
        print(row(label, values))
    problems = 0
    for op in ("create", "apply"):
        print(ratio_row(f"{op}: big / small", times[f"{op} big"], times[f"{op} small"],
                        SIZE_RATIO))
        ratio = median([a / b for a, b in zip(times[f"{op} big"], times[f"{op} small"],
                                              strict=True)])
        if ratio > SIZE_RATIO:
            print(f"PROBLEM {op}: big / small {ratio:.2f}x, above {SIZE_RATIO}")
            problems += 1
        for label in ("big", "small"):
            if median(times[f"{op} {label}"]) >= LIMIT_SECONDS:
                print(f"PROBLEM {op} {label}: {median(times[f'{op} {label}']):.3f} s, not "
                      f"below {LIMIT_SECONDS} s")
                problems += 1
    return problems


def merge_part(rig: Rig, args: argparse.Namespace) -> int:
    size, data = int(args.merge_disk_gib * GIB), int(args.merge_gib * GIB)
    ours: list[float] = []
    ref: list[float] = []
    for i in range(args.repeat):
        folder = world_dir(rig.root / f"merge{i}")
        disk = folder / "disk.vhd"
        make_vhd(disk, size, 0)
        guid = rig.define_vm(f"bench-merge{i}-{rig.token}", [disk])
        _, iid = create(rig, guid)
        write(current_disk(rig, guid), "qcow2", data)
        ref_disk, ref_overlay = folder / "ref.vhd", folder / "ref.qcow2"
        make_vhd(ref_disk, size, 0)
        run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(ref_disk), "-F", "vpc",
             str(ref_overlay)], timeout=60)
        write(str(ref_overlay), "qcow2", data)

        def service(iid: str = iid) -> float:
            sync()
            return rig.job("RemoveVirtualSystemSnapshot", SnapshotSettingData=settings(iid))[0]

        def commit(overlay: Path = ref_overlay) -> float:
            sync()
            start = time.monotonic()
            run(["qemu-img", "commit", "-q", "-d", "-f", "qcow2", str(overlay)], timeout=3600)
            return time.monotonic() - start

        if i % 2 == 0:
            ours.append(service())
            ref.append(commit())
        else:
            ref.append(commit())
            ours.append(service())
        if current_disk(rig, guid) != str(disk):
            raise BenchError("the removal did not merge the overlay back into the VHD")
    print(f"remove a snapshot, merging {args.merge_gib:g} GiB of changes, {args.repeat} "
          "repetition(s):")
    print(row("RemoveVirtualSystemSnapshot job", ours))
    print(row("qemu-img commit -d", ref))
    print(ratio_row("remove / qemu-img commit", ours, ref, MERGE_RATIO))
    ratio = median([a / b for a, b in zip(ours, ref, strict=True) if b > 0])
    if ratio > MERGE_RATIO:
        print(f"PROBLEM remove / commit {ratio:.2f}x, above {MERGE_RATIO}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    stop_on_sigterm()
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--big-gib", type=float, default=100.0)
    p.add_argument("--small-gib", type=float, default=10.0)
    p.add_argument("--data-gib", type=float, default=2.0)
    p.add_argument("--merge-gib", type=float, default=1.0)
    p.add_argument("--merge-disk-gib", type=float, default=4.0)
    p.add_argument("--uri", default="qemu:///system")
    args = p.parse_args(argv)
    print(machine())
    try:
        with Rig(args.dir, args.uri) as rig:
            problems = size_part(rig, args) + merge_part(rig, args)
    except (BenchError, VsmsError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
