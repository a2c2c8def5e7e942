"""Shared pieces of the job tests: work built from a function, a clock, undo handlers."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from vsms.jobs.context import JobContext, OpContext
from vsms.jobs.undo import UndoBook, UndoStep

DEADLINE = 20.0  # seconds: the longest any test waits for a job


class FnWork:
    """Work whose body is a plain function of the context (the manager's JobContext)."""

    def __init__(self, fn: Callable[[JobContext], None]) -> None:
        self.fn = fn

    def run(self, ctx: OpContext) -> None:
        self.fn(cast(JobContext, ctx))


class Clock:
    """A settable UTC clock for retention tests."""

    def __init__(self) -> None:
        self.now = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass(frozen=True)
class RemovePath(UndoStep[list[Any]]):
    """The real undo of a created file, by path (what these tests need; vsms's own
    RemoveFile checks the inode)."""

    kind = "remove_file"
    path: str

    def describe(self) -> str:
        return f"remove {self.path}"

    def undo(self, env: list[Any]) -> None:
        os.remove(self.path)


@dataclass(frozen=True)
class Record(UndoStep[list[Any]]):
    """Appends ``n`` to the book's list when undone."""

    kind = "record"
    n: Any

    def describe(self) -> str:
        return f"undo record (n={self.n!r})"

    def undo(self, env: list[Any]) -> None:
        env.append(self.n)


@dataclass(frozen=True)
class Broken(UndoStep[list[Any]]):
    """An undo step that always fails, as a busy device would make it."""

    kind = "broken"
    path: str
    why: str = ""

    def describe(self) -> str:
        return f"undo broken (path={self.path!r})"

    def undo(self, env: list[Any]) -> None:
        raise OSError(self.why or f"[Errno 13] Permission denied: {self.path!r}")


def book(undone: list[Any] | None = None) -> UndoBook[list[Any]]:
    """The test steps; what they undo is appended to ``undone``."""
    return UndoBook((RemovePath, Record, Broken), [] if undone is None else undone)


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
