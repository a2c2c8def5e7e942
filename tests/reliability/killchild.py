"""Child process of the kill-point test: one scenario, killed at its N-th kill point.

Usage: python -m tests.reliability.killchild SCENARIO WORKDIR KILL_AT LIBVIRT_URI PREFIX

Starts a Service on WORKDIR/state with the storage root WORKDIR/store, runs the scenario's
set-up, writes WORKDIR/baseline.json (the storage listing before the operation), installs the
kill points (only here, in this process) and runs the operation. If the KILL_AT-th kill point is
reached the process dies by SIGKILL; otherwise it prints ``DONE <kill points reached>``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.reliability.scenarios import SCENARIOS, Bench, listing
from vsms.app import Service
from vsms.client import LocalClient
from vsms.settings import Settings
from vsms.testing.killpoints import KillPoints


def main() -> int:
    scenario, work_arg, kill_at_arg, uri, prefix = sys.argv[1:6]
    work = Path(work_arg)
    setup, run = SCENARIOS[scenario]
    root = work / "store"
    service = Service(Settings(state_dir=work / "state", storage_roots=(root,),
                               libvirt_uri=uri))
    bench = Bench(service, LocalClient(service.registry), root, prefix)
    setup(bench)
    (work / "baseline.json").write_text(json.dumps({"listing": listing(root),
                                                    "facts": bench.facts}))
    points = KillPoints(int(kill_at_arg), work / "hits.log")
    points.install()
    run(bench)
    points.disarm()
    points.uninstall()
    service.close()
    print(f"DONE {points.count}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
