"""Benchmark: a cold read of many domains, their XML fetched one by one or several at a time.

Defines ``--count`` small VMs straight through ``VirtHost.define`` (our metadata, no disks),
then, per repetition and in alternating order, fills a new, empty ``SystemCache`` from one
listing of every domain on the connection (what a service does on its first listing after a
start): once with ``PARALLEL_FROM`` raised out of reach (every ``XMLDesc`` call in turn), once
as shipped (``READERS`` calls in flight past ``PARALLEL_FROM`` domains). Both caches must list
every VM it defined (other domains may come and go meanwhile). It prints the times, their
ratio, and the time per domain. Every VM it defined is undefined at the end. Not part of the
test suite.

    .venv/bin/python bench/bench_xml_fetch.py [--count 3000] [--repeat 5] [--uri qemu:///system]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import uuid

import libvirt
from benchlib import BenchError, machine, median, ratio_row, row, stop_on_sigterm

from vsms.errors import VsmsError
from vsms.model.vm import VirtualSystem, default_controllers, new_guid
from vsms.virt import cache as cache_module
from vsms.virt.cache import SystemCache
from vsms.virt.host import VirtHost


def fill(uri: str, parallel: bool) -> tuple[float, set[str]]:
    """Seconds to fill an empty cache from one listing; the GUIDs it lists as ours."""
    shipped = cache_module.PARALLEL_FROM
    conn = libvirt.open(uri)
    try:
        if not parallel:
            cache_module.PARALLEL_FROM = sys.maxsize
        fresh = SystemCache()
        start = time.monotonic()
        fresh.refresh(conn, conn.listAllDomains(0), force_resync=True)
        return time.monotonic() - start, fresh.guids()
    finally:
        cache_module.PARALLEL_FROM = shipped
        conn.close()


def main(argv: list[str] | None = None) -> int:
    stop_on_sigterm()
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--count", type=int, default=3000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--uri", default="qemu:///system")
    args = p.parse_args(argv)
    token = uuid.uuid4().hex[:8]
    guids: list[str] = []
    times: dict[str, list[float]] = {"serial": [], "parallel": []}
    try:
        with VirtHost(args.uri) as host:
            start = time.monotonic()
            for i in range(args.count):
                vs = VirtualSystem(guid=new_guid(), name=f"xmlbench-{token}-{i:05d}",
                                   memory_mb=64, processors=1)
                vs.controllers = default_controllers()
                guids.append(vs.guid)
                host.define(vs)
            print(f"defined {args.count} VMs named xmlbench-{token}-* in "
                  f"{time.monotonic() - start:.1f} s", flush=True)
        for i in range(args.repeat):
            order = [False, True] if i % 2 == 0 else [True, False]
            listed = []
            for parallel in order:
                elapsed, ours = fill(args.uri, parallel)
                times["parallel" if parallel else "serial"].append(elapsed)
                listed.append(ours)
            # other users of the host may define and undefine domains between the two
            # listings: only this benchmark's own VMs must be listed by both
            if not (set(guids) <= listed[0] and set(guids) <= listed[1]):
                raise BenchError("the two ways of reading listed different VMs")
    except (BenchError, VsmsError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    finally:
        undefine(args.uri, guids)
    print(f"machine: {machine()}")
    print(f"cold read of {args.count} VMs (seconds; READERS = {cache_module.READERS}):")
    print(row("XMLDesc one after another", times["serial"]))
    print(row("XMLDesc several in flight (as shipped)", times["parallel"]))
    print(ratio_row("in flight / one after another", times["parallel"], times["serial"], None))
    for key in ("serial", "parallel"):
        print(f"  {key}: {median(times[key]) / args.count * 1e6:.0f} µs per domain")
    return 0


def undefine(uri: str, guids: list[str]) -> None:
    conn = libvirt.open(uri)
    try:
        for guid in guids:
            with contextlib.suppress(libvirt.libvirtError):
                conn.lookupByUUIDString(guid).undefine()
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
