"""Fixtures of the reliability tests, and the kill-point figures in pytest's summary."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import client, service  # noqa: F401  (the same fixtures)

FIGURES_PROPERTY = "killpoint-figures"  # a user property of each sweep's report (JSON)


@pytest.hookimpl
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collects the figures each kill-point sweep attached to its report (in the main process,
    whether the test ran there or in a pytest-xdist worker)."""
    if report.when != "call":
        return
    for name, value in report.user_properties:
        if name == FIGURES_PROPERTY:
            COLLECTED.append(json.loads(str(value)))


COLLECTED: list[dict[str, Any]] = []


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    figures = COLLECTED
    if not figures:
        return
    terminalreporter.section("kill points (SIGKILL + restart + invariants)")
    for f in figures:
        terminalreporter.write_line(
            f"{f['scenario']:<22} {f['tried']:>3} tried of {f['found']:>3} found "
            f"({f['mode']}), {f['interrupted']:>3} with a job interrupted, "
            f"{f['problems']} problem(s), {f['seconds']:.0f} s")
    total = sum(f["tried"] for f in figures)
    terminalreporter.write_line(f"total: {total} kill points survived "
                                f"of {sum(f['found'] for f in figures)} found")
    out = os.environ.get("VSMS_KILLPOINTS_REPORT")
    if out:
        Path(out).write_text(json.dumps(figures, indent=1))
