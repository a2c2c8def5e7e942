"""``vsms jobs [--watch]``: the service's jobs (Msvm_ConcreteJob and Msvm_StorageJob).

Finished jobs stay visible for their TimeBeforeRemoval (5 minutes). ``--watch`` refreshes the
list until no job is running (or ``--timeout`` passes): redrawn in place on a terminal, one
line per change otherwise.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import pywbem

from vsms.cim import names
from vsms.cim.enums import JobState
from vsms.cli.output import Output
from vsms.cli.session import CliError, Session, job_summary

_RUNNING = frozenset(int(s) for s in JobState if not s.finished)
_WATCH_INTERVAL = 1.0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
               parents: list[argparse.ArgumentParser]) -> None:
    a = sub.add_parser("jobs", parents=parents, help="list the service's jobs")
    a.add_argument("--watch", action="store_true",
                   help="keep showing the jobs until none is running")
    a.set_defaults(run=cmd_jobs)


def list_jobs(s: Session) -> list[dict[str, Any]]:
    """Every job, oldest first (Msvm_StorageJob included, whether or not the server's
    enumeration of Msvm_ConcreteJob already returns its subclass)."""
    seen: dict[str, pywbem.CIMInstance] = {}
    for classname in (names.CONCRETE_JOB, names.STORAGE_JOB):
        for job in s.conn.EnumerateInstances(classname):
            seen.setdefault(str(job.get("InstanceID")), job)
    jobs = [job_summary(j) for j in seen.values()]
    return sorted(jobs, key=lambda j: (str(j["submitted"] or ""), str(j["id"])))


def _rows(jobs: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for j in jobs:
        detail = j["error_description"] if j["error_description"] else (j["description"] or "")
        rows.append([str(j["id"]), str(j["name"] or ""), j["state"], f"{j['percent'] or 0}%",
                     str(detail)])
    return rows


_HEADER = ["ID", "NAME", "STATE", "DONE", "DETAIL"]


def cmd_jobs(args: argparse.Namespace, s: Session, out: Output) -> int:
    jobs = list_jobs(s)
    if not args.watch:
        text = out.table(_rows(jobs), _HEADER) if jobs else ["no jobs"]
        out.result(text, jobs)
        return 0
    live = out.stdout.isatty() and not out.json
    deadline = time.monotonic() + s.timeout
    shown: dict[str, tuple[str, Any]] = {}
    while True:
        if live:
            out.stdout.write("\x1b[H\x1b[J" + "\n".join(out.table(_rows(jobs), _HEADER)
                                                        if jobs else ["no jobs"]) + "\n")
            out.stdout.flush()
        elif not out.json:
            for row, j in zip(_rows(jobs), jobs, strict=True):
                if shown.get(str(j["id"])) != (j["state"], j["percent"]):
                    shown[str(j["id"])] = (j["state"], j["percent"])
                    out.stdout.write("  ".join(row) + "\n")
            out.stdout.flush()
        if not any(j["state_code"] in _RUNNING for j in jobs):
            break
        if time.monotonic() > deadline:
            raise CliError(f"jobs are still running after {s.timeout:g} s", data={"jobs": jobs})
        time.sleep(_WATCH_INTERVAL)
        jobs = list_jobs(s)
    if out.json:
        out.result("", jobs)
    elif not live:
        out.stdout.write("no job is running\n")
    return 0
