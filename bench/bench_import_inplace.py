"""Benchmark: in-place import of a VM with two disks, against ``virsh define`` of the same XML.

A VM with two dynamic VHDs (default 10 GiB virtual each, freshly created, so almost no data)
and a NIC is defined and exported with storage, once per repetition. Then, in the same run:

* ImportVirtualSystem in place with a new ID (the whole job: read and validate the export,
  verify every checksum of the manifest, plan, mark the directory consumed, define), timed
  from the method call to the end of the job;
* ``virsh -c URI define`` of the domain XML libvirt holds for the source VM, with another UUID
  and name and without our metadata (the equivalent domain: same devices and disks; the time
  includes starting virsh), and, for scale, the same XML through ``virConnect.defineXML`` in
  this process.

With ``--digests unknown`` (the default) the service's digest book is emptied before each
import, as for an export another host wrote, so the import hashes every file; with ``--digests
known`` it keeps the digests the export recorded, as for an export written on this host, and
hashes nothing but what changed since. The order alternates between repetitions. It prints the
times and the median ratio import / virsh define (target: at most 2). ``--profile`` adds a
cProfile of one extra import. Every VM and file it made is removed. Not part of the test suite.

    .venv/bin/python bench/bench_import_inplace.py [--dir /var/tmp] [--repeat 10]
        [--size-gib 10] [--data-mib 0] [--digests unknown|known] [--uri qemu:///system]
        [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import pstats
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import libvirt
from benchlib import (
    GIB,
    MIB,
    BenchError,
    Rig,
    machine,
    make_vhd,
    ratio_row,
    row,
    run,
    stop_on_sigterm,
    sync,
    world_dir,
)

from vsms.errors import VsmsError

TARGET = 2.0


def twin_xml(xml: str) -> tuple[str, str]:
    """The domain XML with a fresh UUID and name (and no metadata of ours): (xml, uuid)."""
    new = str(uuid.uuid4())
    xml = re.sub(r"<uuid>[^<]*</uuid>", f"<uuid>{new}</uuid>", xml, count=1)
    xml = re.sub(r"<name>[^<]*</name>", f"<name>bench-twin-{new[:8]}</name>", xml, count=1)
    xml = re.sub(r"<metadata>.*?</metadata>", "", xml, count=1, flags=re.S)
    return xml, new


def main(argv: list[str] | None = None) -> int:
    stop_on_sigterm()
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--size-gib", type=float, default=10.0, help="virtual size of each VHD")
    p.add_argument("--data-mib", type=int, default=0, help="data written into each VHD")
    p.add_argument("--digests", choices=("unknown", "known"), default="unknown",
                   help="whether the importing service knows the export's digests")
    p.add_argument("--uri", default="qemu:///system")
    p.add_argument("--profile", action="store_true", help="cProfile one more import")
    args = p.parse_args(argv)
    conn = libvirt.open(args.uri)
    twins: list[str] = []
    try:
        with Rig(args.dir, args.uri) as rig:
            return measure(rig, conn, args, twins)
    except (BenchError, VsmsError) as exc:  # VsmsError: e.g. libvirt unreachable
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    finally:
        undefine(conn, twins)
        conn.close()


def undefine(conn: libvirt.virConnect, twins: list[str]) -> None:
    """Undefine the twin domains (those that exist) and forget them."""
    for u in twins:
        with contextlib.suppress(libvirt.libvirtError):
            conn.lookupByUUIDString(u).undefine()
    twins.clear()


def measure(rig: Rig, conn: libvirt.virConnect, args: argparse.Namespace,
            twins: list[str]) -> int:
    vms = world_dir(rig.root / "vms")
    disks = [vms / "a.vhd", vms / "b.vhd"]
    for d in disks:
        make_vhd(d, int(args.size_gib * GIB), args.data_mib * MIB)
    name = f"bench-{rig.token}"
    guid = rig.define_vm(name, disks)
    rig.add_nic(guid)
    base_xml = conn.lookupByUUIDString(guid).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    times: dict[str, list[float]] = {"import": [], "virsh": [], "api": []}
    reps = args.repeat + (1 if args.profile else 0)
    for i in range(reps):
        exp_root = world_dir(rig.root / f"exp{i}")
        rig.export(guid, exp_root)
        exp = exp_root / name
        sync()
        if args.profile and i == reps - 1:
            prof = cProfile.Profile()
            prof.enable()
            rig.import_in_place(exp)
            prof.disable()
            print("profile of one in-place import (cumulative, top 30):")
            pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
            break
        xml_file = rig.root / f"twin{i}.xml"
        twin_text, twin_uuid = twin_xml(base_xml)
        xml_file.write_text(twin_text)

        def ours(exp: Path = exp) -> float:
            if args.digests == "unknown":
                rig.svc.store.forget_digests()  # as for an export written by another host
            return rig.import_in_place(exp)[0]

        def virsh(xml_file: Path = xml_file, twin: str = twin_uuid) -> float:
            twins.append(twin)  # first: removed at the end whatever happens
            start = time.monotonic()
            run(["virsh", "-c", rig.uri, "define", str(xml_file)], timeout=60)
            elapsed = time.monotonic() - start
            conn.lookupByUUIDString(twin)  # raises when virsh did not define it
            return elapsed

        def api(xml_file: Path = xml_file) -> float:
            xml, twin = twin_xml(xml_file.read_text())
            twins.append(twin)
            start = time.monotonic()
            conn.defineXML(xml)
            return time.monotonic() - start

        steps: list[tuple[str, Callable[[], float]]] = [
            ("import", ours), ("virsh", virsh), ("api", api)]
        for key, fn in steps if i % 2 == 0 else reversed(steps):
            times[key].append(fn())
        undefine(conn, twins)
        for g in list(rig.guids - {guid}):
            rig.forget(g)
        shutil.rmtree(exp_root)
    print(f"machine: {machine()}")
    print(f"two dynamic VHDs of {args.size_gib:g} GiB with {args.data_mib} MiB of data each; "
          f"digests {args.digests} to the importing service")
    print("times (seconds):")
    print(row("ImportVirtualSystem in place (job)", times["import"]))
    print(row("virsh define (equivalent XML)", times["virsh"]))
    print(row("virConnect.defineXML (same XML)", times["api"]))
    print("ratios:")
    print(ratio_row("in-place import / virsh define", times["import"], times["virsh"], TARGET))
    print(ratio_row("in-place import / defineXML", times["import"], times["api"], None))
    ratios = sorted(a / b for a, b in zip(times["import"], times["virsh"], strict=True))
    return 0 if ratios and ratios[len(ratios) // 2] <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
