"""Benchmark: the image service's long jobs against the qemu-img command they run.

ConvertVirtualHardDisk (a dynamic VHD to a dynamic VHDX) against ``qemu-img convert -f vpc -O
vhdx``, and MergeVirtualHardDisk (a qcow2 differencing disk into its VHDX parent) against
``qemu-img commit``, on the same freshly made images, in the same run. The service is a real
``vsms.app.Service`` (in-process client: the time is the method call plus the job, polled every
50 ms, as a client would); contents are checked with ``qemu-img compare``. Prints the medians
and the ratios (see ``both``); removes every file it made. Not part of the test suite.

    .venv/bin/python bench/bench_image.py [--dir /var/tmp] [--size-mib 2048] [--data-mib 512]
                                          [--repeat 4] [--uri qemu:///system]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pywbem

from vsms.app import Service
from vsms.cim import names
from vsms.cim.enums import JobState, ReturnCode
from vsms.client import LocalClient
from vsms.settings import Settings

MIB = 1024 * 1024


def sh(*args: str) -> None:
    subprocess.run(list(args), check=True, timeout=3600, capture_output=True)


def make_disk(path: Path, fmt: str, size_mib: int, data_mib: int, pattern: int,
              backing: Path | None = None) -> None:
    """A dynamic image (or an overlay of ``backing``) with ``data_mib`` MiB written in 16
    extents spread over the disk."""
    if backing is None:
        opts = ["-o", "subformat=dynamic,force_size=on"] if fmt == "vpc" else []
        sh("qemu-img", "create", "-q", "-f", fmt, *opts, str(path), f"{size_mib}M")
    else:
        sh("qemu-img", "create", "-q", "-f", fmt, "-b", str(backing), "-F", "vhdx", str(path))
    extent, stride = max(1, data_mib // 16), size_mib // 16
    cmds: list[str] = []
    for i in range(16):
        cmds += ["-c", f"write -P {pattern + i} {i * stride}M {extent}M"]
    sh("qemu-io", "-f", fmt, *cmds, str(path))


def timed(fn: Callable[[], object]) -> float:
    sh("sync")
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def job(client: LocalClient, method: str, **params: object) -> None:
    rv, _out, done = client.run(names.IMAGE_SERVICE, method, timeout=3600, **params)
    if rv != ReturnCode.JOB_STARTED or done is None or done["JobState"] != JobState.COMPLETED:
        raise SystemExit(f"benchmark failed: {method} answered {rv}: "
                         f"{done['ErrorDescription'] if done is not None else _out}")


def same(a: Path, fa: str, b: Path, fb: str) -> bool:
    return subprocess.run(["qemu-img", "compare", "-q", "-f", fa, "-F", fb, str(a), str(b)],
                          timeout=3600, check=False).returncode == 0


Times = tuple[list[float], list[float]]


def both(ours: Callable[[], object], ref: Callable[[], object], times: Times, flip: bool) -> None:
    """Time both, in the order ``flip`` says. On the development machine the second of two
    back-to-back disk jobs is up to 3x slower than the first whatever runs it (the storage is
    still busy with the first one's writes after ``sync``), so rounds alternate the order and
    the ratio reported is the geometric mean of the per-round ratios, where that cancels."""
    if flip:
        times[1].append(timed(ref))
    times[0].append(timed(ours))
    if not flip:
        times[1].append(timed(ref))


def one_round(client: LocalClient, work: Path, i: int, size: int, data: int,
              conv: Times, merge: Times) -> bool:
    src = work / f"src{i}.vhd"
    make_disk(src, "vpc", size, data, 0x10)
    ours, ref = work / f"ours{i}.vhdx", work / f"ref{i}.vhdx"
    both(lambda: job(client, "ConvertVirtualHardDisk", SourcePath=str(src),
                     DestinationPath=str(ours), Type=pywbem.Uint16(3)),
         lambda: sh("qemu-img", "convert", "-f", "vpc", "-O", "vhdx", "-o",
                    "subformat=dynamic", str(src), str(ref)), conv, bool(i % 2))
    ok = same(src, "vpc", ours, "vhdx") and same(src, "vpc", ref, "vhdx")
    kids = [ours.with_suffix(".qcow2"), ref.with_suffix(".qcow2")]
    for kid, base in zip(kids, (ours, ref), strict=True):
        make_disk(kid, "qcow2", size, data, 0x40, backing=base)
    both(lambda: job(client, "MergeVirtualHardDisk", SourcePath=str(kids[0]),
                     DestinationPath=str(ours)),
         lambda: sh("qemu-img", "commit", "-f", "qcow2", "-d", str(kids[1])), merge,
         bool(i % 2))
    ok = ok and same(ours, "vhdx", ref, "vhdx")
    for p in (src, ours, ref, *kids):
        p.unlink(missing_ok=True)
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/var/tmp")
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--data-mib", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=4, help="rounds (even: both orders)")
    parser.add_argument("--uri", default="qemu:///system")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vsms-bench-image-", dir=args.dir))
    svc = Service(Settings(state_dir=work / "state", storage_roots=(work,),
                           libvirt_uri=args.uri, job_workers=1))
    client = LocalClient(svc.registry)
    conv: Times = ([], [])
    merge: Times = ([], [])
    ok = True
    try:
        for i in range(args.repeat):
            ok = one_round(client, work, i, args.size_mib, args.data_mib, conv, merge) and ok
    finally:
        svc.close(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.repeat} run(s), {args.size_mib} MiB disks with {args.data_mib} MiB of data")
    for label, (ours_t, ref_t) in (("ConvertVirtualHardDisk vs qemu-img convert", conv),
                                   ("MergeVirtualHardDisk vs qemu-img commit", merge)):
        a, b = statistics.median(ours_t), statistics.median(ref_t)
        ratio = statistics.geometric_mean([x / y for x, y in zip(ours_t, ref_t, strict=True)])
        print(f"{label:<44} medians {a:6.2f} s / {b:6.2f} s; ratio {ratio:.2f}x "
              "(geometric mean of the rounds)")
    print(f"contents identical: {ok}")
    if not ok:
        raise SystemExit("benchmark failed: the contents differ")


if __name__ == "__main__":
    main()
