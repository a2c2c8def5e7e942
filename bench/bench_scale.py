"""Benchmark: the service with many defined VMs (default 100 and 1,000; 5,000 on request).

VMs are defined through the service (DefineVirtualSystem, then, with ``--disk-mib``, a small
dynamic VHD each attached with AddVirtualSystemResources, as a Hyper-V client does). At each
count it measures, on the Python API (``service.registry``):

* EnumerateInstances of Msvm_ComputerSystem;
* the ExecQuery-by-name equivalent (enumerate, keep ElementName == one name);
* GetInstance of one VM, and Associators/References of one VM (its settings, its export
  setting data);
* start-up: a new Service on the same state directory and libvirt (old one closed), and the
  first EnumerateInstances of that new service (its caches are cold);
* the resident memory (VmRSS) of this process, which hosts the service;
* the define rate while the VMs of that step were added.

Each figure is printed with its ratio to the first (smallest) count and the ratio of the
counts, so "no faster than linear" reads as ratio <= count ratio. Every VM it defined is
undefined through libvirt at the end, every file removed. Not part of the test suite.

    .venv/bin/python bench/bench_scale.py [--counts 100,1000] [--disk-mib 0] [--repeat 5]
        [--dir /var/tmp] [--uri qemu:///system]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import libvirt
from benchlib import MIB, BenchError, Rig, machine, make_vhd, median, stop_on_sigterm, world_dir

from vsms.cim import names
from vsms.errors import VsmsError


@dataclass
class Step:
    count: int
    define_rate: float = 0.0  # VMs per second while this step's VMs were defined
    figures: dict[str, float] = field(default_factory=dict)


def rss() -> int:
    """Resident set size of this process in bytes."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def best_of(repeat: int, fn: object) -> float:
    """Median seconds of ``repeat`` calls of ``fn``."""
    assert callable(fn)
    times = []
    for _ in range(repeat):
        start = time.monotonic()
        fn()
        times.append(time.monotonic() - start)
    return median(times)


def define_up_to(rig: Rig, count: int, defined: list[str], disk_mib: int) -> float:
    """Define VMs until ``count`` exist; VMs per second."""
    disks = world_dir(rig.root / "disks")
    start, before = time.monotonic(), len(defined)
    while len(defined) < count:
        n = len(defined)
        vm_disks: list[Path] = []
        if disk_mib:
            vm_disks = [disks / f"vm{n:05d}.vhd"]
            make_vhd(vm_disks[0], disk_mib * MIB, 0)
        defined.append(rig.define_vm(f"scale-{rig.token}-{n:05d}", vm_disks))
        if (n + 1) % 500 == 0:
            print(f"  {n + 1} VMs defined ({time.monotonic() - start:.0f} s this step)",
                  flush=True)
    elapsed = time.monotonic() - start
    return (len(defined) - before) / elapsed if elapsed > 0 else float("inf")


def measure(rig: Rig, defined: list[str], repeat: int) -> dict[str, float]:
    client = rig.client
    ns = names.NAMESPACE
    ours = f"scale-{rig.token}-"
    listed = client.registry.enumerate_instances(ns, names.COMPUTER_SYSTEM)
    mine = [i for i in listed if str(i["ElementName"]).startswith(ours)]
    if len(mine) != len(defined):
        raise BenchError(f"EnumerateInstances shows {len(mine)} of our {len(defined)} VMs")
    target = f"{ours}{len(defined) // 2:05d}"

    def query() -> None:
        found = [i for i in client.registry.enumerate_instances(ns, names.COMPUTER_SYSTEM)
                 if i["ElementName"] == target]
        if len(found) != 1:
            raise BenchError(f"the query by name found {len(found)} VMs named {target}")

    path = mine[len(mine) // 2].path
    reg = client.registry
    figures = {
        "EnumerateInstances": best_of(repeat, lambda: client.registry.enumerate_instances(
            ns, names.COMPUTER_SYSTEM)),
        "query by name": best_of(repeat, query),
        "GetInstance": best_of(repeat * 10, lambda: client.registry.get_instance(ns, path)),
        "Associators of one VM (its VSSD)": best_of(
            repeat * 10, lambda: reg.associators(ns, path, result_class=names.VSSD)),
        "References of one VM": best_of(repeat * 10, lambda: reg.references(ns, path)),
    }
    gc.collect()
    figures["RSS MiB"] = rss() / MIB
    starts, firsts = [], []
    for _ in range(max(1, repeat // 2)):
        starts.append(rig.restart())
        start = time.monotonic()
        rig.client.registry.enumerate_instances(ns, names.COMPUTER_SYSTEM)
        firsts.append(time.monotonic() - start)
    figures["start-up (new Service)"] = median(starts)
    figures["first EnumerateInstances after start"] = median(firsts)
    return figures


def report(steps: list[Step]) -> bool:
    base = steps[0]
    print(f"machine: {machine()}")
    keys = list(base.figures)
    head = f"  {'figure':<40}" + "".join(f"{s.count:>12}" for s in steps)
    print("absolute (seconds unless named):")
    print(head)
    for key in keys:
        print(f"  {key:<40}" + "".join(f"{s.figures[key]:12.4f}" for s in steps))
    print(f"  {'define rate (VMs/s)':<40}" + "".join(f"{s.define_rate:12.1f}" for s in steps))
    print(f"  {'define rate / first count':<40}"
          + "".join(f"{s.define_rate / base.define_rate:12.2f}" for s in steps))
    print(f"ratios to {base.count} VMs (count ratio in the first row):")
    print(f"  {'count ratio (linear bound)':<40}"
          + "".join(f"{s.count / base.count:12.1f}" for s in steps))
    linear = True
    for key in keys:
        if key == "RSS MiB":
            continue
        cells = []
        for s in steps:
            r = s.figures[key] / base.figures[key] if base.figures[key] > 0 else float("nan")
            bound = s.count / base.count
            over = r > bound * 1.25  # 25% noise allowance on a shared machine
            linear &= not over
            cells.append(f"{r:11.1f}{'!' if over else ' '}")
        print(f"  {key:<40}" + "".join(cells))
    grow = [(s.figures["RSS MiB"] - base.figures["RSS MiB"]) for s in steps[1:]]
    per_vm = [g * MIB / (s.count - base.count) / 1024 for g, s in zip(grow, steps[1:],
                                                                       strict=True)]
    print("memory: RSS growth over the first count: "
          + ", ".join(f"{g:+.1f} MiB at {s.count} ({k:.1f} KiB per VM)"
                      for g, s, k in zip(grow, steps[1:], per_vm, strict=True)))
    print("('!' marks a figure that grew faster than linearly, beyond 25% noise)")
    return linear


def main(argv: list[str] | None = None) -> int:
    stop_on_sigterm()
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--counts", default="100,1000", help="comma-separated VM counts")
    p.add_argument("--disk-mib", type=int, default=0,
                   help="give each VM a dynamic VHD of this size (0: no disks)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    p.add_argument("--uri", default="qemu:///system")
    args = p.parse_args(argv)
    counts = sorted({int(c) for c in args.counts.split(",") if c.strip()})
    if not counts or counts[0] < 1:
        p.error("--counts needs positive numbers")
    steps: list[Step] = []
    defined: list[str] = []
    try:
        with Rig(args.dir, args.uri) as rig:
            try:
                for count in counts:
                    rate = define_up_to(rig, count, defined, args.disk_mib)
                    step = Step(count, rate, measure(rig, defined, args.repeat))
                    steps.append(step)
                    print(f"  measured at {count} VMs: "
                          + ", ".join(f"{k} {v:.4f}" for k, v in step.figures.items()),
                          flush=True)
            finally:
                undefine_all(rig, defined)
    except (BenchError, VsmsError) as exc:  # VsmsError: e.g. libvirt unreachable
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    linear = report(steps)
    return 0 if linear else 1


def undefine_all(rig: Rig, guids: list[str]) -> None:
    """Undefine the benchmark's VMs straight through libvirt (faster than the service)."""
    start = time.monotonic()
    conn = libvirt.open(rig.uri)
    try:
        for guid in guids:
            with contextlib.suppress(libvirt.libvirtError):
                conn.lookupByUUIDString(guid).undefine()
            rig.guids.discard(guid)
    finally:
        conn.close()
    print(f"  undefined {len(guids)} VMs in {time.monotonic() - start:.1f} s", flush=True)



if __name__ == "__main__":
    sys.exit(main())
