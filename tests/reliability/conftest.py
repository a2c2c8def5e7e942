"""Fixtures of the reliability tests, and the kill-point figures in pytest's summary."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import client, service  # noqa: F401  (the same fixtures)

FIGURES = pytest.StashKey[list[dict[str, Any]]]()


@pytest.fixture
def killpoint_figures(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """Where each kill-point sweep records its figures for the end-of-run summary."""
    return request.config.stash.setdefault(FIGURES, [])


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    figures = config.stash.get(FIGURES, [])
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
