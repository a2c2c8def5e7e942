"""Benchmark: GetSummaryInformation for every VM vs EnumerateInstances of Msvm_ComputerSystem.

Defines VMs (libvirt domains with our metadata, no disks; 10 and 1,000 by default, a few of
them running) through the Service's own VirtHost on qemu:///system, serves CIM-XML from an
in-process server on 127.0.0.1 whose libvirt connection goes through a relay that counts the
RPC calls, and measures in the same run, for each size:

* the server's own time (CimXmlHandler.handle: request parsed to response body built) of
  GetSummaryInformation with NULL SettingData (every VM) and RequestedInformation
  0, 1, 100, 101, 103, 105 (Name, ElementName, EnabledState, ProcessorLoad, MemoryUsage,
  UpTime), and of EnumerateInstances of Msvm_ComputerSystem (the same VMs and the host);
  target: summary <= 2x the enumeration (the median of the rounds' own ratios);
* end to end through pywbem for both;
* the libvirt calls each request makes; target: the same for every size.

Every VM it defines is removed at the end (also on Ctrl-C or SIGTERM). Not part of the tests
(``tests/bench/test_bench_summary_smoke.py`` runs it with tiny sizes).

    .venv/bin/python bench/bench_summary.py [--sizes 10,1000] [--running 2] [--repeat 9]
        [--json FILE]
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pywbem
from loadlib import Probe, Stop, median, ms  # bench/loadlib.py, beside this script

from vsms.app import Service
from vsms.cim import names
from vsms.model.vm import VirtualSystem, default_controllers, new_guid
from vsms.settings import Settings
from vsms.wbem.server import WbemServer

REPO = Path(__file__).resolve().parents[1]
LIBVIRT_SOCKET = "/run/libvirt/libvirt-sock"
CS = names.COMPUTER_SYSTEM
ITEMS = (0, 1, 100, 101, 103, 105)
TARGET_RATIO = 2.0


class Bench:
    def __init__(self, service: Service, server: WbemServer, proxy: Any, token: str,
                 repeat: int) -> None:
        self.service, self.server, self.proxy = service, server, proxy
        self.token, self.repeat = token, repeat
        self.conn = pywbem.WBEMConnection(f"http://127.0.0.1:{server.ports['http']}",
                                          default_namespace=names.NAMESPACE, timeout=300)
        self.probe = Probe(server.handler)
        self.vsms = self.conn.EnumerateInstanceNames(names.VSMS)[0]
        self.guids: list[str] = []
        self.running: list[str] = []

    def grow(self, n: int, running: int) -> float:
        start = time.perf_counter()
        while len(self.guids) < n:
            name = f"vsms-bench-{self.token}-{len(self.guids):04d}"
            vs = VirtualSystem(guid=new_guid(), name=name, memory_mb=32,
                               controllers=default_controllers())
            self.guids.append(vs.guid)  # before define: removed even if define half-worked
            self.service.host.define(vs)
        for guid in self.guids[:running]:
            if guid not in self.running:
                self.service.host.start(guid)
                self.running.append(guid)
        return time.perf_counter() - start

    def remove(self) -> None:
        for guid in reversed(self.guids):
            try:
                if guid in self.running:
                    self.service.host.turn_off(guid)
                self.service.host.undefine(guid)
            except Exception as exc:  # keep removing the others
                print(f"could not remove VM {guid}: {exc}", file=sys.stderr)
        self.guids, self.running = [], []

    def summary(self) -> list[Any]:
        rv, out = self.conn.InvokeMethod("GetSummaryInformation", self.vsms,
                                         RequestedInformation=[pywbem.Uint32(i) for i in ITEMS])
        if rv != 0:
            raise RuntimeError(f"GetSummaryInformation answered {rv}: {out}")
        found: list[Any] = out["SummaryInformation"]
        return found

    def enumerate(self) -> list[Any]:
        found: list[Any] = self.conn.EnumerateInstances(CS)
        return found

    def one(self, call: Callable[[], list[Any]]) -> tuple[float, float, int, int]:
        """(server s, end-to-end s, libvirt calls, objects) of one call, after a collection."""
        gc.collect()
        before = self.proxy.calls
        start = time.perf_counter()
        found = call()
        e2e = time.perf_counter() - start
        return self.probe.last()[0], e2e, self.proxy.calls - before, len(found)

    def size(self, n: int, running: int) -> dict[str, Any]:
        took = self.grow(n, running)
        self.summary()  # warm-up: the VM cache after the definitions, the load meter
        self.enumerate()
        rows: dict[str, list[tuple[float, float, int, int]]] = {"summary": [], "enumerate": []}
        for _ in range(self.repeat):  # alternate: load that comes and goes hits both alike
            rows["summary"].append(self.one(self.summary))
            rows["enumerate"].append(self.one(self.enumerate))
        out: dict[str, Any] = {"vms": n, "running": len(self.running), "define_s": took}
        for key, samples in rows.items():
            out[key] = {"server": median([s[0] for s in samples]),
                        "e2e": median([s[1] for s in samples]),
                        "libvirt_calls": min(s[2] for s in samples),
                        "libvirt_calls_max": max(s[2] for s in samples),
                        "objects": samples[-1][3]}
        out["ratio"] = median([s[0] / e[0] for s, e in zip(rows["summary"], rows["enumerate"],
                                                            strict=True)])
        return out


def verdicts(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    def mark(ok: bool) -> str:
        return "met" if ok else "MISSED"
    big = results["sizes"][-1]
    calls = [row["summary"]["libvirt_calls"] for row in results["sizes"]]
    return [
        ("ratio", f"summary / EnumerateInstances server time at {big['vms']} VMs "
                  f"(<= {TARGET_RATIO}x)",
         f"{big['ratio']:.2f}x  {mark(big['ratio'] <= TARGET_RATIO)}"),
        ("calls", "libvirt calls per GetSummaryInformation, by size (constant)",
         f"{calls}  {mark(max(calls) == min(calls))}"),
    ]


def report(results: dict[str, Any]) -> None:
    print(f"\n{'VMs':>5} {'running':>7} {'request':<22} {'server':>10} {'end to end':>11} "
          f"{'libvirt calls':>14} {'objects':>8}")
    for row in results["sizes"]:
        for key, label in (("summary", "GetSummaryInformation"),
                           ("enumerate", "EnumerateInstances")):
            r = row[key]
            calls = f"{r['libvirt_calls']}" + (f" (max {r['libvirt_calls_max']})"
                                               if r["libvirt_calls_max"] != r["libvirt_calls"]
                                               else "")
            print(f"{row['vms']:>5} {row['running']:>7} {label:<22} {ms(r['server']):>10} "
                  f"{ms(r['e2e']):>11} {calls:>14} {r['objects']:>8}")
        print(f"{'':>5} {'':>7} {'ratio (server time)':<22} {row['ratio']:>9.2f}x")
    print(f"  (medians of {results['repeat']} rounds; libvirt calls: the fewest of the rounds, "
          "other processes' domains add reads)")
    for _key, label, value in results["verdicts"]:
        print(f"  {label:<64} {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,1000")
    parser.add_argument("--running", type=int, default=2, help="VMs started (of the first size)")
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--dir", default="/var/tmp", help="where the state directory goes")
    parser.add_argument("--json", type=Path, help="also write the results there")
    args = parser.parse_args()
    sizes = sorted(int(x) for x in args.sizes.split(","))
    if sizes[0] < 1 or args.repeat < 1 or args.running < 0:
        parser.error("sizes and --repeat must be positive, --running not negative")
    sys.path.insert(0, str(REPO))  # the relay that counts libvirt calls lives with the tests
    from tests.virt.proxy import LibvirtProxy

    def on_term(_sig: int, _frame: FrameType | None) -> None:
        raise Stop
    signal.signal(signal.SIGTERM, on_term)
    token = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix="vsms-bench-summary-", dir=args.dir))
    proxy = LibvirtProxy(work / "libvirt.sock", LIBVIRT_SOCKET)
    settings = Settings(state_dir=work / "state", storage_roots=(work / "storage",),
                        libvirt_uri=proxy.uri)
    results: dict[str, Any] = {"token": token, "repeat": args.repeat, "sizes": []}
    try:
        with Service(settings) as service:
            server = WbemServer(service.registry, http_port=0, workers=4)
            server.start()
            bench = Bench(service, server, proxy, token, args.repeat)
            try:
                for n in sizes:
                    print(f"{n} VMs ...", flush=True)
                    results["sizes"].append(bench.size(n, min(args.running, sizes[0])))
            finally:
                bench.conn.close()
                server.stop()
                bench.remove()
    except (KeyboardInterrupt, Stop):
        print("interrupted; the VMs were removed", file=sys.stderr)
        return 130
    finally:
        proxy.close()
        shutil.rmtree(work, ignore_errors=True)
    results["verdicts"] = verdicts(results)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
