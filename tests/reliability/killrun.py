"""The parent side of the kill-point test: run the child, kill it at N, restart, check.

One attempt = one child process (``killchild.py``) on a fresh work directory, killed by its own
N-th kill point, then one restarted ``Service`` on the same state directory and storage root,
the invariants of ``invariants.py``, and the clean-up of every VM the attempt made.

A sweep first runs the scenario with no kill (N = 0) to count its kill points K, then tries
N = 1, 2, 3, … until a run completes without reaching N (exhaustive), or, within a budget of B
attempts, B values of N spread evenly over 1..K (the bounded CI run).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.reliability import invariants
from tests.reliability.scenarios import listing
from vsms.app import Service
from vsms.model.job import JobRecord
from vsms.settings import Settings
from vsms.store.db import Store

ROOT = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT = 180.0


@dataclass
class Attempt:
    kill_at: int
    killed: bool
    reached: int  # kill points the child reached (== kill_at when it was killed)
    label: str  # the kill point that killed it, "" for a complete run
    interrupted: int  # jobs that were unfinished in the store at the crash
    problems: list[str]
    seconds: float


@dataclass
class Sweep:
    scenario: str
    found: int = 0  # kill points of a complete run
    attempts: list[Attempt] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # of the complete run, in order

    @property
    def tried(self) -> list[Attempt]:
        return [a for a in self.attempts if a.killed]

    @property
    def problems(self) -> list[str]:
        return [f"{self.scenario} N={a.kill_at} ({a.label or 'complete run'}): {p}"
                for a in self.attempts for p in a.problems]


def spread(total: int, budget: int) -> list[int]:
    """``budget`` kill-point numbers spread evenly over 1..total (all when they fit)."""
    if total <= budget:
        return list(range(1, total + 1))
    if budget <= 1:
        return [1]
    return sorted({1 + round(i * (total - 1) / (budget - 1)) for i in range(budget)})


def _hits(work: Path) -> list[str]:
    log = work / "hits.log"
    if not log.exists():
        return []
    return [line.split("\t", 1)[1] for line in log.read_text().splitlines() if "\t" in line]


def _run_child(scenario: str, work: Path, kill_at: int, uri: str, prefix: str) -> bool:
    """Run the child; True when it was killed by a kill point, False when it completed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    with open(work / "child.err", "w") as err:
        proc = subprocess.run(
            [sys.executable, "-m", "tests.reliability.killchild", scenario, str(work),
             str(kill_at), uri, prefix],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True,
            timeout=CHILD_TIMEOUT, check=False)
    if proc.returncode == -signal.SIGKILL:
        return True
    if proc.returncode != 0 or not proc.stdout.startswith("DONE"):
        tail = (work / "child.err").read_text()[-3000:]
        raise AssertionError(f"the {scenario} child (N={kill_at}) failed with exit code "
                             f"{proc.returncode}:\n{proc.stdout}\n{tail}")
    return False


def attempt(scenario: str, base: Path, kill_at: int, uri: str) -> tuple[Attempt, list[str]]:
    """One kill point; returns the attempt and the labels of the kill points reached."""
    started = time.monotonic()
    work = base / f"{scenario}-{kill_at}"
    work.mkdir(mode=0o755)
    os.chmod(work, 0o755)
    prefix = f"kp-{base.name}-{scenario}-{kill_at}-"
    root = work / "store"
    settings = Settings(state_dir=work / "state", storage_roots=(root,), libvirt_uri=uri)
    try:
        killed = _run_child(scenario, work, kill_at, uri, prefix)
        hits = _hits(work)
        baseline = json.loads((work / "baseline.json").read_text())
        store = Store(settings.database)
        try:
            interrupted = [r for r in store.load_jobs() if not r.state.finished]
        finally:
            store.close()
        service = Service(settings)
        try:
            problems = check(service, uri, root, prefix, baseline["listing"], interrupted)
        finally:
            invariants.cleanup(service, uri, root, prefix)
            service.close()
    except BaseException:
        # whatever happened, leave no domain behind
        with contextlib.suppress(Exception), Service(settings) as service:
            invariants.cleanup(service, uri, root, prefix)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    label = hits[-1] if killed and hits else ""
    return Attempt(kill_at, killed, len(hits), label, len(interrupted), problems,
                   time.monotonic() - started), hits


def check(service: Service, uri: str, root: Path, prefix: str, before: dict[str, str],
          interrupted: list[JobRecord]) -> list[str]:
    real = Path(os.path.realpath(root))
    vms = invariants.ours(service, real, prefix)
    problems = invariants.vm_problems(service, vms, uri, real, prefix)
    problems += invariants.consumed_problems(service, vms)
    export_problems, exports = invariants.export_problems(real)
    problems += export_problems
    problems += invariants.file_problems(real, before, listing(real), vms, exports)
    problems += invariants.job_problems(service, interrupted)
    problems += invariants.process_problems(real)
    return problems


def sweep(scenario: str, base: Path, uri: str, budget: int | None,
          report: list[str] | None = None) -> Sweep:
    """Count the kill points of ``scenario``, then try them (all, or ``budget`` of them)."""
    result = Sweep(scenario)
    complete, labels = attempt(scenario, base, 0, uri)
    result.attempts.append(complete)
    result.found, result.labels = complete.reached, labels
    if budget is None:
        points: list[int] = []
        n = 1
        while n <= 10 * result.found + 20:  # N = 1, 2, 3, … until a run completes
            one, _ = attempt(scenario, base, n, uri)
            result.attempts.append(one)
            _log(report, scenario, one)
            if not one.killed:
                break
            n += 1
        else:
            raise AssertionError(f"{scenario}: the scenario never completed")
        return result
    points = spread(result.found, budget)
    for n in points:
        one, _ = attempt(scenario, base, n, uri)
        result.attempts.append(one)
        _log(report, scenario, one)
    return result


def _log(report: list[str] | None, scenario: str, one: Attempt) -> None:
    what = f"killed at {one.label}" if one.killed else "completed"
    line = (f"{scenario} N={one.kill_at}: {what}; {one.interrupted} job(s) interrupted; "
            f"{'OK' if not one.problems else '; '.join(one.problems)} ({one.seconds:.1f} s)")
    print(line, flush=True)
    if report is not None:
        report.append(line)
