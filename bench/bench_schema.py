"""Benchmark: the MOF schema compiled once per process, and what a Service costs with it.

Measures, in one run, on libvirt's ``test:///default`` driver (no VM is defined):

* **compile**: compiling root/virtualization's MOF afresh (what every ``load_schema`` call did
  before the schema was kept per process);
* **copy**: ``load_schema`` from the kept schema (deep copies the caller may change);
* **Service, kept schema**: constructing and closing a ``vsms.app.Service`` while the schema
  is kept (every Service after the first in a process);
* **Service, empty cache**: the same right after the kept schema was dropped, so that the
  Service compiles it once (what each Service paid at least before).

Medians of ``--repeat`` rounds (after one warm-up), and the ratio of the two Service figures.

    .venv/bin/python bench/bench_schema.py [--repeat 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vsms.app import Service
from vsms.cim import schema
from vsms.cim.names import NAMESPACE
from vsms.settings import Settings


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results there")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be positive")
    work = Path(tempfile.mkdtemp(prefix="vsms-bench-schema-", dir="/var/tmp"))
    n = [0]

    def service() -> None:
        n[0] += 1
        root = work / str(n[0])
        settings = Settings(state_dir=root / "state", storage_roots=(root / "storage",),
                            libvirt_uri="test:///default")
        Service(settings).close()

    def cold_service() -> None:
        schema._cache.clear()  # the benchmark's own reset: the next Service compiles
        service()

    rounds: dict[str, list[float]] = {"compile": [], "copy": [], "service_kept": [],
                                      "service_empty_cache": []}
    path = schema.mof_file(NAMESPACE)
    try:
        for round_no in range(args.repeat + 1):  # the first round warms up
            got = {"compile": timed(lambda: schema._compile(path, NAMESPACE)),
                   "service_empty_cache": timed(cold_service),
                   "copy": timed(lambda: schema.load_schema(NAMESPACE)),
                   "service_kept": timed(service)}
            if round_no:
                for key, value in got.items():
                    rounds[key].append(value)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results: dict[str, Any] = {k: median(v) for k, v in rounds.items()}
    results["ratio"] = results["service_empty_cache"] / results["service_kept"]
    results["rounds"] = rounds
    print(f"root/virtualization, medians of {args.repeat} rounds:")
    print(f"  compile afresh                  {results['compile'] * 1000:8.1f} ms")
    print(f"  load_schema from the kept one   {results['copy'] * 1000:8.1f} ms")
    print(f"  Service, empty cache (compiles) {results['service_empty_cache'] * 1000:8.1f} ms")
    print(f"  Service, kept schema            {results['service_kept'] * 1000:8.1f} ms")
    print(f"  empty cache / kept              {results['ratio']:8.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
