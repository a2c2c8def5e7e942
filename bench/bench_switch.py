"""Benchmark: define + connect a network adapter for many VMs on one virtual switch (issue 14).

One private switch (CreateSwitch); then for each VM, as a Hyper-V client does: CreateSwitchPort
on the switch, and DefineVirtualSystem with one synthetic adapter whose Connection is that
port's path. Each VM's cost (the two calls) is timed. The figure is the per-VM cost (median of
the last ``--window`` VMs; their first quartile is given too, being less sensitive to bursts
of other work on a shared machine) when the host holds N VMs on the switch, at each count, and
its ratio to the first count (issue 14: at 1,000 vs 100, at most 1.2: a flat per-VM cost).
The service runs in this process, so the process's CPU time per VM is vsms's own work (not
libvirtd's, and not the time spent waiting for a CPU): the figure least disturbed by a loaded
machine. Every VM and the switch are removed at the end. Not part of the test suite.

    .venv/bin/python bench/bench_switch.py [--counts 100,1000] [--window 50]
        [--uri qemu:///system] [--dir /var/tmp] [--json out.json] [--baseline] [--revisit]

``--revisit`` then undefines the newest VMs down to the first count less the window and
measures the first count again: the machine's load drifts over a run (other work on a shared
machine), and a first-count figure taken at both ends tells drift from growth; the ratio is
then also given against the mean of the two.

``--baseline`` defines the same VMs with an unconnected adapter and no port: the cost the host
and the rest of vsms add as VMs accumulate, to read the switch's own share against.

The VMs are only defined, never started (nothing boots, nothing reaches a network). libvirt's
test driver cannot serve it: it does not keep a started network's new persistent definition
apart from its running one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

import pywbem
from benchlib import Rig, machine, stop_on_sigterm

from vsms.cim import names
from vsms.mapping import switch_paths as sp


def call(rig: Rig, target: pywbem.CIMInstanceName, method: str,
         **params: object) -> dict[str, object]:
    rv, out = rig.svc.registry.invoke_method(names.NAMESPACE, target, method, dict(params))
    if rv != 0:
        raise SystemExit(f"{method} answered {rv}: {out.get('ErrorDescription')}")
    return dict(out)


def service(rig: Rig, classname: str) -> pywbem.CIMInstanceName:
    path = rig.svc.registry.enumerate_instances(names.NAMESPACE, classname)[0].path
    assert path is not None
    return path


def one_vm(rig: Rig, switches: pywbem.CIMInstanceName, vsms: pywbem.CIMInstanceName,
           switch: pywbem.CIMInstanceName | None, i: int, order: list[str]
           ) -> tuple[float, float, float]:
    """CreateSwitchPort, then DefineVirtualSystem with an adapter on it: seconds of each
    (``switch`` None: the baseline, an unconnected adapter and no port)."""
    cpu = time.process_time()
    started = time.perf_counter()
    port: pywbem.CIMInstanceName | None = None
    if switch is not None:
        made = call(rig, switches, "CreateSwitchPort", VirtualSwitch=switch,
                    Name=str(uuid.uuid4()), FriendlyName=f"vm{i}")["CreatedSwitchPort"]
        assert isinstance(made, pywbem.CIMInstanceName)
        port = made
    ported = time.perf_counter()
    gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": f"bench-{rig.token}-{i}"})
    nic = pywbem.CIMInstance(names.SYNTHETIC_NIC_SD, properties={
        "ResourceType": pywbem.Uint16(10), "ResourceSubType": "Microsoft Synthetic Ethernet Port",
        "Connection": pywbem.CIMProperty(
            "Connection", [str(port.to_wbem_uri())] if port is not None else None,
            type="string", is_array=True)})
    out = call(rig, vsms, "DefineVirtualSystem", SystemSettingData=gsd.tocimxmlstr(),
               ResourceSettingData=[nic.tocimxmlstr()])
    done = time.perf_counter()
    defined = out["DefinedSystem"]
    assert isinstance(defined, pywbem.CIMInstanceName)
    rig.guids.add(str(defined["Name"]).upper())
    order.append(str(defined["Name"]).upper())
    return ported - started, done - ported, time.process_time() - cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default="100,1000")
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--uri", default="qemu:///system")
    ap.add_argument("--dir", default="/var/tmp", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--baseline", action="store_true",
                    help="define the VMs with an unconnected adapter and no port (what the "
                         "same host costs without switches)")
    ap.add_argument("--revisit", action="store_true",
                    help="after the last count, go back down to the first and measure it again")
    args = ap.parse_args()
    counts = sorted(int(c) for c in args.counts.split(","))
    stop_on_sigterm()
    results: list[dict[str, float]] = []
    with Rig(args.dir, args.uri) as rig:
        switches, vsms = service(rig, sp.SERVICE), service(rig, names.VSMS)
        name = str(uuid.uuid4()).upper()
        switch = call(rig, switches, "CreateSwitch", Name=name,
                      FriendlyName=f"bench-{rig.token}")["CreatedVirtualSwitch"]
        assert isinstance(switch, pywbem.CIMInstanceName)
        used = None if args.baseline else switch
        costs: list[tuple[float, float, float]] = []
        order: list[str] = []

        def measure(count: int, window: list[tuple[float, float, float]], label: str) -> None:
            per_vm = statistics.median(a + b for a, b, _ in window) * 1000
            low_ms = statistics.quantiles([a + b for a, b, _ in window], n=4)[0] * 1000
            port_ms = statistics.median(a for a, _, _ in window) * 1000
            define_ms = statistics.median(b for _, b, _ in window) * 1000
            cpu_ms = statistics.median(c for _, _, c in window) * 1000
            results.append({"vms": count, "per_vm_ms": per_vm, "p25_ms": low_ms,
                            "port_ms": port_ms, "define_ms": define_ms, "cpu_ms": cpu_ms})
            base = results[0]["per_vm_ms"]
            print(f"{count:6d} VMs on the switch{label}: {per_vm:8.2f} ms per VM (median of "
                  f"the last {len(window)}: CreateSwitchPort {port_ms:.2f} ms, "
                  f"DefineVirtualSystem {define_ms:.2f} ms; first quartile {low_ms:.2f} ms; "
                  f"CPU of this process {cpu_ms:.2f} ms), "
                  f"ratio to {counts[0]}: {per_vm / base:.2f}", flush=True)

        try:
            for count in counts:
                while len(costs) < count:
                    costs.append(one_vm(rig, switches, vsms, used, len(costs), order))
                measure(count, costs[count - min(args.window, count):count], "")
            if args.revisit:
                low = max(counts[0] - args.window, 0)
                while len(order) > low:
                    guid = order.pop()
                    rig.svc.host.undefine(guid)
                    rig.guids.discard(guid)
                again = [one_vm(rig, switches, vsms, used, 10**6 + i, order)
                         for i in range(counts[0] - low)]
                measure(counts[0], again, " (again)")
        finally:
            for guid in sorted(rig.guids):
                try:
                    rig.svc.host.undefine(guid)
                except Exception as exc:  # keep removing the others
                    print(f"could not undefine {guid}: {exc}", file=sys.stderr)
            rig.guids.clear()
            try:
                call(rig, switches, "DeleteSwitch", VirtualSwitch=switch)
            except SystemExit as exc:
                print(f"could not delete the switch: {exc}", file=sys.stderr)
    top = results[len(counts) - 1]["per_vm_ms"]
    ratio = top / results[0]["per_vm_ms"]
    what = "baseline (no switch)" if args.baseline else "issue 14: <= 1.2"
    print(f"per-VM cost ratio {counts[-1]} vs {counts[0]}: {ratio:.2f} ({what}); of the first "
          f"quartiles (less sensitive to bursts of load): "
          f"{results[len(counts) - 1]['p25_ms'] / results[0]['p25_ms']:.2f}; of the CPU time of "
          f"this process (vsms's own work): "
          f"{results[len(counts) - 1]['cpu_ms'] / results[0]['cpu_ms']:.2f}")
    if args.revisit:
        both = (results[0]["per_vm_ms"] + results[-1]["per_vm_ms"]) / 2
        print(f"per-VM cost ratio {counts[-1]} vs {counts[0]} measured before and after: "
              f"{top / both:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "uri": args.uri,
                                         "baseline": args.baseline,
                                         "results": results, "ratio": ratio}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
