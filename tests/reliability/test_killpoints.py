"""Crash safety: SIGKILL the service at many points of each operation, restart, check.

For every scenario of ``scenarios.py`` (define, export, import in place, import with copy,
destroy, cancel of an export, cancel of an import) a child process runs the operation with the
kill points of ``vsms.testing.killpoints`` installed and dies at the N-th one; a restarted
Service on the same state must then satisfy every invariant of ``invariants.py``.

``VSMS_KILLPOINTS`` chooses how many: unset, at most ``DEFAULT_BUDGET`` kill points per
scenario spread over all of them (a few minutes in all); an integer, that many; ``all``, every
kill point (N = 1, 2, 3, … until the scenario completes; about ten minutes).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import FIGURES_PROPERTY
from tests.reliability.killrun import sweep
from tests.reliability.scenarios import SCENARIOS

pytestmark = pytest.mark.qemu

DEFAULT_BUDGET = 6


def budget() -> int | None:
    raw = os.environ.get("VSMS_KILLPOINTS", "").strip().lower()
    if raw == "all":
        return None
    if not raw:
        return DEFAULT_BUDGET
    try:
        value = int(raw)
    except ValueError:
        raise pytest.UsageError(f"VSMS_KILLPOINTS must be 'all' or a number, not {raw!r}") \
            from None
    return max(value, 1)


def sweep_and_check(scenario: str, storage_root: Path, qemu_uri: str,
                    request: pytest.FixtureRequest) -> None:
    started = time.monotonic()
    limit = budget()
    result = sweep(scenario, storage_root, qemu_uri, limit)
    tried = result.tried
    figures = {
        "scenario": scenario, "found": result.found, "tried": len(tried),
        "mode": "all" if limit is None else f"budget {limit}",
        "interrupted": sum(1 for a in tried if a.interrupted),
        "problems": len(result.problems), "seconds": time.monotonic() - started,
        "labels": sorted({a.label for a in tried}),
    }
    # the figures travel with the test's report (to pytest's summary, from xdist workers too)
    request.node.user_properties.append((FIGURES_PROPERTY, json.dumps(figures)))
    assert not result.problems, "\n".join(result.problems)
    assert result.found > 0
    # every attempt below the count of a complete run was killed where it was told to
    assert tried, f"{scenario}: no kill point was reached"
    if limit is None:
        assert len(tried) >= result.found - 2, (len(tried), result.found)


def scenario_class(scenario: str) -> type:
    """One test class per scenario: pytest-xdist (``--dist loadscope``) hands each class to a
    worker of its own choosing, so the sweeps, the longest tests of the suite, run side by
    side instead of queueing behind each other on one worker."""

    class Sweep:
        @pytest.mark.timeout(3600)
        def test_kill_points(self, storage_root: Path, qemu_uri: str,
                             request: pytest.FixtureRequest) -> None:
            sweep_and_check(scenario, storage_root, qemu_uri, request)

    Sweep.__name__ = Sweep.__qualname__ = "TestKillPoints_" + scenario.replace("-", "_")
    return Sweep


for _scenario in sorted(SCENARIOS):
    _cls = scenario_class(_scenario)
    globals()[_cls.__name__] = _cls
