"""Shared pieces of the job tests: work built from a function, a clock, undo handlers."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from vsms.jobs.context import JobContext

DEADLINE = 20.0  # seconds: the longest any test waits for a job


class FnWork:
    """Work whose body is a plain function of the context."""

    def __init__(self, fn: Callable[[JobContext], None]) -> None:
        self.fn = fn

    def run(self, ctx: JobContext) -> None:
        self.fn(ctx)


class Clock:
    """A settable UTC clock for retention tests."""

    def __init__(self) -> None:
        self.now = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def remove_file(args: dict[str, Any]) -> None:
    """The real undo of a created file."""
    os.remove(args["path"])


def until_cancelled(ctx: JobContext, deadline: float = DEADLINE) -> None:
    """Loop on check_cancelled until cancelled; fail loudly if nobody cancels in time."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        ctx.check_cancelled()
        time.sleep(0.01)
    raise AssertionError("the job was never cancelled")


def wait_event(event: threading.Event, deadline: float = DEADLINE) -> None:
    if not event.wait(deadline):
        raise AssertionError("timed out waiting for the job")
