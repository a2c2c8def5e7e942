"""Benchmark: the WS-Management front end in front of a real Service on libvirt (qemu:///system).

Defines VMs (libvirt domains with our metadata, no disks; 1,000 by default) through the
Service's own VirtHost, serves CIM-XML and WS-Man from one in-process server on 127.0.0.1, and
prints, from the same run:

* optimized WS-Man Enumerate of every Msvm_ComputerSystem (``wsman:OptimizeEnumeration``,
  ``wsman:MaxElements`` 32000, so one response holds them all): the server's own time
  (WsmanHandler.handle, request parsed to response body built) vs the CIM-XML server's own time
  for EnumerateInstances of the same objects (target <= 1.2x);
* end to end through pypsrp's ``WSMan.enumerate`` vs parsing the same response body alone with
  ElementTree (and lxml when installed) (target <= 1.3x), both in a client process of their
  own, as a user's client is; and, alone, the reading of every VM with its state that any
  enumeration of them makes (``VirtHost.inventory()``: from the table libvirt's lifecycle
  events keep, no libvirt call when nothing changed, its kept answer while no VM, state or
  transition changed; the end to end can be no shorter than it plus the parse), and the
  libvirt listing of every domain with its state it replaces
  (``VirtHost.states()``: what each enumeration made before, and makes when events fail);
* 32 concurrent WS-Man clients (pypsrp, separate processes) doing Get of the VMs in turn:
  requests, latency, errors (target 0);
* 1,000 enumeration contexts opened and abandoned (non-optimized Enumerate, never pulled) over
  Msvm_ComputerSystem at the smallest size: the process's memory growth with a context store
  sized to hold them all, and, with the server's default limits, how many are held and how
  many refused (the store is bounded).

Every VM it defines is removed at the end (also on Ctrl-C or SIGTERM). Not part of the tests
(``tests/bench/test_bench_wsman_smoke.py`` runs it with tiny sizes).

    .venv/bin/python bench/bench_wsman.py [--sizes 10,1000] [--clients 32] [--repeat 9]
        [--duration 5] [--max-requests 2000] [--contexts 1000] [--json FILE]
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import shutil
import signal
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType
from typing import Any

import pywbem
from loadlib import (  # bench/loadlib.py, beside this script
    Probe,
    Stop,
    drive,
    median,
    ms,
    spread,
    summarize,
)
from pypsrp.exceptions import WSManFaultError
from pypsrp.wsman import SelectorSet, WSMan

from vsms.app import Service
from vsms.cim import names
from vsms.cim.enums import OperationalStatus, RequestedState
from vsms.model.vm import VirtualSystem, default_controllers, new_guid
from vsms.operations.transitions import Transition
from vsms.settings import Settings
from vsms.wbem.contexts import EnumerationContexts
from vsms.wbem.server import WbemServer

CS = names.COMPUTER_SYSTEM
URI = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/" + CS
WSEN = "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
MAX_ENVELOPE = 16 * 1024 * 1024  # pypsrp's default (150 KiB) is too small for 1,000 VMs at once
TARGETS = {"wsman_vs_cimxml_server": 1.2, "e2e_vs_parse": 1.3, "errors": 0}


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def client(port: int, timeout: int = 300) -> WSMan:
    return WSMan("127.0.0.1", port=port, ssl=False, auth="basic", encryption="never",
                 username="bench", password="bench", operation_timeout=timeout - 10,
                 read_timeout=timeout, max_envelope_size=MAX_ENVELOPE)


def optimized_enumerate() -> ET.Element:
    enum = ET.Element(f"{{{WSEN}}}Enumerate")
    ET.SubElement(enum, f"{{{WSMAN}}}OptimizeEnumeration")
    ET.SubElement(enum, f"{{{WSMAN}}}MaxElements").text = "32000"
    return enum


class Bench:
    def __init__(self, service: Service, server: WbemServer, token: str, repeat: int) -> None:
        self.service, self.server, self.token, self.repeat = service, server, token, repeat
        self.port = server.ports["wsman-http"]
        self.url = f"http://127.0.0.1:{server.ports['http']}"
        self.conn = pywbem.WBEMConnection(self.url, default_namespace=names.NAMESPACE,
                                          timeout=300)
        self.ws = client(self.port)
        self.cim_probe = Probe(server.handler)
        self.ws_probe = Probe(server.wsman)
        self.guids: list[str] = []

    def grow(self, n: int) -> float:
        start = time.perf_counter()
        while len(self.guids) < n:
            name = f"vsms-bench-{self.token}-{len(self.guids):04d}"
            vs = VirtualSystem(guid=new_guid(), name=name, memory_mb=64,
                               controllers=default_controllers())
            self.guids.append(vs.guid)  # before define: removed even if define half-worked
            self.service.host.define(vs)
        return time.perf_counter() - start

    def remove(self) -> None:
        for guid in reversed(self.guids):
            try:
                self.service.host.undefine(guid)
            except Exception as exc:  # keep removing the others
                print(f"could not remove VM {guid}: {exc}", file=sys.stderr)
        self.guids = []

    def enumerate_ratios(self) -> dict[str, Any]:
        """Each round: pypsrp's optimized enumerate, end to end, and the parse of the body it
        received alone, both in a client process of their own (:func:`e2e_process`); the
        WS-Man server's time for that very request, then CIM-XML EnumerateInstances (the
        server's time), here. A full collection in both processes before each call. Ratios:
        medians of the rounds' own ratios."""
        rounds: dict[str, list[float]] = {"e2e": [], "wsman_server": [], "cimxml_server": [],
                                          "parse_et": [], "parse_lxml": [], "listing": [],
                                          "full_listing": [], "wsman_server_changed": []}
        ctx = multiprocessing.get_context("spawn")
        here, there = ctx.Pipe()
        proc = ctx.Process(target=e2e_process, args=(self.port, there), daemon=True)
        proc.start()
        got: dict[str, Any] = {}
        try:
            for round_no in range(self.repeat + 1):  # the first round warms up
                gc.collect()
                here.send("round")
                if not here.poll(600):
                    raise RuntimeError("the end-to-end client process did not answer")
                got = here.recv()
                ws_took, body = self.ws_probe.last()
                assert len(body) == got["body_bytes"], "the client parsed another response"
                gc.collect()
                self.conn.EnumerateInstances(CS)
                cim_took = self.cim_probe.last()[0]
                # the VMs and states any enumeration of them reads, alone, and the listing of
                # every domain with its state it replaces; each after the definitions other
                # sessions changed meanwhile were re-read (cached_systems), so that neither
                # pays for that churn (an enumeration does, when it happens)
                self.service.host.cached_systems()
                gc.collect()
                start = time.perf_counter()
                self.service.host.inventory()
                listing = time.perf_counter() - start
                self.service.host.cached_systems()
                gc.collect()
                start = time.perf_counter()
                self.service.host.states()
                full_listing = time.perf_counter() - start
                changed = self.changed_enumeration()
                if round_no == 0:
                    continue
                for key, value in (("e2e", got["e2e"]), ("wsman_server", ws_took),
                                   ("cimxml_server", cim_took), ("parse_et", got["parse_et"]),
                                   ("parse_lxml", got["parse_lxml"]), ("listing", listing),
                                   ("full_listing", full_listing),
                                   ("wsman_server_changed", changed)):
                    rounds[key].append(value)
        finally:
            here.send(None)
            proc.join(30)
            if proc.is_alive():
                proc.kill()

        def ratio(a: str, b: str) -> float:
            return median([x / y for x, y in zip(rounds[a], rounds[b], strict=True)])
        lxml = not any(x != x for x in rounds["parse_lxml"])  # NaN: lxml not installed
        return {"objects": got["objects"], "body_bytes": got["body_bytes"],
                **{k: median(v) for k, v in rounds.items()},
                "wsman_vs_cimxml_server": ratio("wsman_server", "cimxml_server"),
                "e2e_vs_parse": ratio("e2e", "parse_et"),
                # each quantity's fastest round: what it costs when nothing else ran meanwhile
                "fastest": {k: min(v) for k, v in rounds.items()},
                # the end to end can be no shorter than the libvirt listing plus the parse
                "floor_vs_parse": median([(x + y) / y for x, y in zip(
                    rounds["listing"], rounds["parse_et"], strict=True)]),
                "e2e_vs_parse_lxml": ratio("e2e", "parse_lxml") if lxml else None,
                "rounds": rounds}

    def changed_enumeration(self) -> float:
        """The WS-Man server's time for the same optimized Enumerate right after something
        it is made from changed (a transition of one VM began and ended: every kept answer is
        void, each VM's instance and text are still kept), asked by a client in this process
        (only the server's own time is taken)."""
        guid = self.guids[0].upper()
        self.service.context.transitions.begin(guid, Transition(
            None, RequestedState.NOT_APPLICABLE, OperationalStatus.EXPORTING)).release()
        gc.collect()
        self.ws.enumerate(URI, resource=optimized_enumerate())
        return self.ws_probe.last()[0]

    def contexts(self, count: int) -> dict[str, Any]:
        """Open ``count`` enumeration contexts and abandon them: memory with a store that
        holds them all; then how many the server's default limits hold."""
        enum = ET.Element(f"{{{WSEN}}}Enumerate")  # not optimized: only a context comes back
        store = self.server.handler.dispatcher.contexts
        saved = (store.max_open, store.max_per_owner)
        gc.collect()
        before = rss_kib()
        opened = refused = 0
        try:
            store.max_open, store.max_per_owner = count + 1, count
            for _ in range(count):
                self.ws.enumerate(URI, resource=enum)
                opened += 1
            gc.collect()
            grown = rss_kib() - before
            held_all = len(store)
        finally:
            store.max_open, store.max_per_owner = saved
        # drop them (as their expiry would) and try again with the default limits
        store._open.clear()  # the benchmark's own reset
        gc.collect()
        samples: list[str] = []
        for _ in range(count):
            try:
                self.ws.enumerate(URI, resource=enum)
            except WSManFaultError as exc:
                refused += 1
                if len(samples) < 1:
                    samples.append(str(exc)[:200])
        held_default = len(store)
        store._open.clear()
        return {"count": count, "opened": opened, "held": held_all, "rss_growth_kib": grown,
                "per_context_kib": grown / count if count else 0.0,
                "items_per_context": len(self.guids) + 1,
                "default_limit": saved[0], "held_with_defaults": held_default,
                "refused_with_defaults": refused, "refusal": samples}


def e2e_process(port: int, conn: Connection) -> None:
    """The end-to-end client, in a process of its own as a user's client is (sharing the
    server's process would add its interpreter lock and its heap to the client's time). On
    each word from the parent: a full collection, pypsrp's optimized Enumerate timed, another
    collection, then the very bytes pypsrp received parsed alone by ElementTree (what pypsrp
    parses them with) and lxml; None ends it."""
    try:
        from lxml import etree as lxml_etree
    except ImportError:  # optional
        lxml_etree = None
    ws = client(port)
    received = [b""]
    send = ws.transport.send

    def keep(*args: Any, **kwargs: Any) -> bytes:
        data: bytes = send(*args, **kwargs)
        received[0] = data
        return data
    ws.transport.send = keep  # type: ignore[method-assign]
    try:
        while conn.recv() is not None:
            gc.collect()
            start = time.perf_counter()
            resp = ws.enumerate(URI, resource=optimized_enumerate())
            e2e = time.perf_counter() - start
            items = resp.find(f".//{{{WSMAN}}}Items")
            assert resp.find(f".//{{{WSMAN}}}EndOfSequence") is not None, "not one response"
            body = received[0]
            gc.collect()  # as before the end-to-end call: neither pays for the other's garbage
            start = time.perf_counter()
            ET.fromstring(body)
            parse_et = time.perf_counter() - start
            parse_lxml = float("nan")
            if lxml_etree is not None:
                start = time.perf_counter()
                lxml_etree.fromstring(body)
                parse_lxml = time.perf_counter() - start
            conn.send({"e2e": e2e, "parse_et": parse_et, "parse_lxml": parse_lxml,
                       "objects": len(items) if items is not None else 0,
                       "body_bytes": len(body)})
    finally:
        ws.close()


def client_process(port: int, threads: int, guids: list[str], start_at: float,
                   duration: float, max_requests: int) -> dict[str, Any]:
    """One load process: ``threads`` pypsrp clients doing Get of the VMs in turn."""

    def get(w: WSMan, i: int) -> None:
        sel = SelectorSet()
        sel.add_option("CreationClassName", CS)
        sel.add_option("Name", guids[i % len(guids)])
        w.get(URI, selector_set=sel)

    return drive(threads, start_at, duration, max_requests,
                 lambda: client(port, timeout=120), get, lambda w: w.close())


def load(bench: Bench, clients: int, duration: float, max_requests: int) -> dict[str, Any]:
    procs, split = spread(clients)
    start_at = time.time() + 2.0 + 0.5 * procs
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=procs, mp_context=ctx) as pool:
        futures = [pool.submit(client_process, bench.port, t, bench.guids, start_at, duration,
                               max_requests)
                   for t in split]
        parts = [f.result(timeout=duration + 300) for f in futures]
    return summarize(parts, clients, procs, start_at)


def verdicts(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    big = results["sizes"][-1]
    most = max(results["load"], key=lambda r: r["clients"]) if results["load"] else None
    ctx = results["contexts"]

    def mark(ok: bool) -> str:
        return "met" if ok else "MISSED"
    a, b = big["wsman_vs_cimxml_server"], big["e2e_vs_parse"]
    out = [
        ("wsman_vs_cimxml_server", "WS-Man server / CIM-XML server (target <= 1.2x)",
         f"{a:.2f}x  {mark(a <= TARGETS['wsman_vs_cimxml_server'])}"),
        ("e2e_vs_parse", "pypsrp end to end / ElementTree parse (target <= 1.3x)",
         f"{b:.2f}x  {mark(b <= TARGETS['e2e_vs_parse'])}"),
    ]
    if most is not None:
        out.append(("errors", f"errors under {most['clients']} WS-Man clients (target 0)",
                    f"{most['errors']}  {mark(most['errors'] == 0)}"))
    out.append(("contexts", f"contexts held with the default limits (bound "
                f"{ctx['default_limit']})",
                f"{ctx['held_with_defaults']}  "
                f"{mark(ctx['held_with_defaults'] <= ctx['default_limit'])}"))
    return out


def report(results: dict[str, Any]) -> None:
    print(f"\n{'VMs':>5} {'objects':>8} {'body':>10} {'pypsrp e2e':>11} {'WS-Man srv':>11} "
          f"{'CIM-XML srv':>11} {'ET parse':>11} {'lxml parse':>11} {'VM states':>11} "
          f"{'listing':>11}")
    for row in results["sizes"]:
        print(f"{row['vms']:>5} {row['objects']:>8} {row['body_bytes']:>10} {ms(row['e2e']):>11} "
              f"{ms(row['wsman_server']):>11} {ms(row['cimxml_server']):>11} "
              f"{ms(row['parse_et']):>11} {ms(row['parse_lxml']):>11} "
              f"{ms(row['listing']):>11} {ms(row['full_listing']):>11}")
    big = results["sizes"][-1]
    f = big["fastest"]
    print(f"{'fastest':>5} {'rounds':>8} {'':>10} {ms(f['e2e']):>11} {ms(f['wsman_server']):>11} "
          f"{ms(f['cimxml_server']):>11} {ms(f['parse_et']):>11} {ms(f['parse_lxml']):>11} "
          f"{ms(f['listing']):>11} {ms(f['full_listing']):>11}")
    print(f"  (fastest: each quantity's fastest round at {big['vms']} VMs; pypsrp e2e / ET "
          f"parse of them: {f['e2e'] / f['parse_et']:.2f}x)")
    print(f"  (VM states: every VM and its state as any enumeration of them reads them "
          f"(event-kept), alone; (VM states + ET parse) / ET parse = "
          f"{big['floor_vs_parse']:.2f}x; listing: libvirt's listing of every domain and its "
          f"state, what it replaces)")
    for row in results["sizes"]:
        print(f"  (WS-Man server at {row['vms']} VMs right after one VM's transition began and "
              f"ended, every kept answer void, each VM's instance and text still kept: "
              f"{ms(row['wsman_server_changed'])}, fastest "
              f"{ms(row['fastest']['wsman_server_changed'])})")
    print(f"\n{'clients':>7} {'requests':>9} {'req/s':>8} {'p50':>11} {'p99':>11} {'errors':>7}")
    for r in results["load"]:
        print(f"{r['clients']:>7} {r['requests']:>9} {r['per_second']:>8.0f} {ms(r['p50']):>11} "
              f"{ms(r['p99']):>11} {r['errors']:>7}")
        for s in r["error_samples"]:
            print(f"        error: {s}")
    c = results["contexts"]
    print(f"\n{c['count']} enumeration contexts opened and abandoned "
          f"({c['items_per_context']} Msvm_ComputerSystem each): memory +{c['rss_growth_kib']} KiB "
          f"({c['per_context_kib']:.1f} KiB per context) with a store holding all {c['held']}; "
          f"with the default limits {c['held_with_defaults']} held, "
          f"{c['refused_with_defaults']} refused")
    print(f"  (medians of {results['repeat']} rounds; ratios: medians of the rounds' ratios)")
    for _key, label, value in results["verdicts"]:
        print(f"  {label:<56} {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,1000")
    parser.add_argument("--clients", default="32")
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load level")
    parser.add_argument("--max-requests", type=int, default=2000, help="per client per level")
    parser.add_argument("--contexts", type=int, default=1000)
    parser.add_argument("--dir", default="/var/tmp", help="where the state directory goes")
    parser.add_argument("--json", type=Path, help="also write the results there")
    args = parser.parse_args()
    sizes = sorted(int(x) for x in args.sizes.split(","))
    clients = [int(x) for x in args.clients.split(",")]
    if sizes[0] < 1 or args.repeat < 1 or min(clients) < 1 or args.contexts < 1:
        parser.error("sizes, clients, --contexts and --repeat must be positive")

    def on_term(_sig: int, _frame: FrameType | None) -> None:
        raise Stop
    signal.signal(signal.SIGTERM, on_term)
    token = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix="vsms-bench-wsman-", dir=args.dir))
    settings = Settings(state_dir=work / "state", storage_roots=(work / "storage",),
                        libvirt_uri="qemu:///system")
    results: dict[str, Any] = {"token": token, "repeat": args.repeat, "sizes": [], "load": []}
    try:
        with Service(settings) as service:
            server = WbemServer(service.registry, http_port=0, workers=8, wsman_http_port=0,
                                contexts=EnumerationContexts())
            server.start()
            bench = Bench(service, server, token, args.repeat)
            try:
                for i, n in enumerate(sizes):
                    print(f"{n} VMs ...", flush=True)
                    took = bench.grow(n)
                    if i == 0:
                        results["contexts"] = bench.contexts(args.contexts)
                    results["sizes"].append({"vms": n, "define_s": took,
                                             **bench.enumerate_ratios()})
                for c in clients:
                    print(f"{c} concurrent WS-Man clients ...", flush=True)
                    results["load"].append(load(bench, c, args.duration, args.max_requests))
            finally:
                bench.conn.close()
                bench.ws.close()
                server.stop()
                bench.remove()
    except (KeyboardInterrupt, Stop):
        print("interrupted; the VMs were removed", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["verdicts"] = verdicts(results)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
