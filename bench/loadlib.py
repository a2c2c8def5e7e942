"""What the protocol benchmarks (bench_wbem.py, bench_wsman.py) share: concurrent-client load,
the probe that times a server handler, medians and their printing.

A benchmark's module-level ``client_process`` (picklable, run in a spawned process) calls
:func:`drive` with how to open one client and how to make request ``i`` with it; the parent
splits the clients over processes with :func:`spread` and sums the processes' totals with
:func:`summarize`. Every request loop is bounded by a count and a deadline.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any


def spread(clients: int) -> tuple[int, list[int]]:
    """(processes, threads in each) for ``clients`` clients: two processes per core at most."""
    procs = min(clients, max(1, os.cpu_count() or 1) * 2)
    return procs, [clients // procs + (1 if p < clients % procs else 0) for p in range(procs)]


def drive(threads: int, start_at: float, duration: float, max_requests: int,
          open_client: Callable[[], Any], request: Callable[[Any, int], Any],
          close: Callable[[Any], Any]) -> dict[str, Any]:
    """Run ``threads`` clients from ``start_at`` (wall clock) for ``duration`` s or
    ``max_requests`` requests each; client ``k`` makes requests k, k + threads, …"""
    lock = threading.Lock()
    totals: dict[str, Any] = {"ok": 0, "errors": 0, "samples": [], "latencies": [], "end": 0.0}

    def one(k: int) -> None:
        conn = open_client()
        ok = errors = 0
        samples: list[str] = []
        lat: list[float] = []
        time.sleep(max(0.0, start_at - time.time()))
        stop = time.monotonic() + duration
        i = k
        while ok + errors < max_requests and time.monotonic() < stop:
            t0 = time.perf_counter()
            try:
                request(conn, i)
                ok += 1
                lat.append(time.perf_counter() - t0)
            except Exception as exc:
                errors += 1
                if len(samples) < 3:
                    samples.append(f"{type(exc).__name__}: {exc}")
            i += threads
        close(conn)
        with lock:
            totals["ok"] += ok
            totals["errors"] += errors
            totals["samples"] += samples
            totals["latencies"] += lat
            totals["end"] = max(totals["end"], time.time())

    workers = [threading.Thread(target=one, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(duration + 120)
    return totals


def summarize(parts: list[dict[str, Any]], clients: int, procs: int,
              start_at: float) -> dict[str, Any]:
    """One load row from the processes' totals: requests, errors, rate, p50 and p99."""
    ok = sum(p["ok"] for p in parts)
    lat = sorted(x for p in parts for x in p["latencies"])
    window = max(p["end"] for p in parts) - start_at
    return {"clients": clients, "processes": procs, "requests": ok,
            "errors": sum(p["errors"] for p in parts),
            "error_samples": [s for p in parts for s in p["samples"]][:5],
            "seconds": window, "per_second": ok / window if window > 0 else 0.0,
            "p50": lat[len(lat) // 2] if lat else float("nan"),
            "p99": lat[int(len(lat) * 0.99)] if lat else float("nan")}


class Stop(Exception):
    """SIGTERM: unwind so the VMs are removed."""


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


class Probe:
    """Wraps one server handler's ``handle``: its own time per request and the last body."""

    def __init__(self, handler: Any) -> None:
        self._inner = handler.handle
        self._lock = threading.Lock()
        self.times: list[float] = []
        self.body = b""
        setattr(handler, "handle", self._handle)  # noqa: B010 (instance attribute)

    def _handle(self, method: str, headers: Any, body: bytes, **kw: Any) -> Any:
        start = time.perf_counter()
        reply = self._inner(method, headers, body, **kw)
        elapsed = time.perf_counter() - start
        with self._lock:
            self.times.append(elapsed)
            self.body = reply.data()
        return reply

    def last(self) -> tuple[float, bytes]:
        with self._lock:
            return self.times[-1], self.body
