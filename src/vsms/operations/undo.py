"""The undo steps of vsms's operations, and running an operation within a method call.

Each kind of undo record is one class here (``vsms.jobs.undo.UndoStep``): its fields are what the
journal stores, ``describe`` says what it does, ``undo`` does it. ``undo_handlers(host, store)``
gives the job manager the book of these classes (the name is kept from the dict it once was).
Every step is idempotent (undoing something already undone is not an error), because recovery
after a crash may replay a record whose side effect never happened.

Operations that finish within the method call (DefineVirtualSystem, Modify…, Add/Remove…
Resources) run through ``run_now``: the same ``run(ctx)`` as a job, with the undo records kept
in memory and replayed in reverse if the operation fails.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from vsms.cim.enums import EnabledState
from vsms.disks import anchor
from vsms.disks.anchor import Identity
from vsms.errors import InvalidParameter, NotFound, OperationFailed
from vsms.jobs.context import OpContext, Work
from vsms.jobs.undo import UndoBook, UndoStep
from vsms.mapping.vmjson import from_json
from vsms.model.job import AffectedElement
from vsms.operations.snapshot_live import LiveMerge
from vsms.store.db import Store
from vsms.virt.host import VirtHost

log = logging.getLogger(__name__)

Operation = Work  # the one job-body protocol (vsms.jobs.context.Work), under its old name here

__all__ = [
    "STEPS",
    "LocalContext",
    "OpContext",
    "Operation",
    "Redefine",
    "RemoveFile",
    "RemoveTree",
    "Undefine",
    "UndoEnv",
    "UnmarkConsumed",
    "Work",
    "run_now",
    "undo_handlers",
]


@dataclass(frozen=True)
class UndoEnv:
    """What vsms's undo steps act on."""

    host: VirtHost
    store: Store


# --------------------------------------------------------------------------- files

@dataclass(frozen=True)
class RemoveFile(UndoStep[UndoEnv]):
    """Remove the file ``name`` the job created in the folder ``parent``: only when the name,
    looked up through a fresh handle of the folder without following links, is still the
    inode (``dev``, ``ino``) recorded at creation. Without an identity (written before the
    creation and not amended: a crash in between, or a journal from an older vsms) only an
    empty file of the service's user is removed; ``made`` False: nothing was created."""

    kind = "remove_file"
    parent: str
    name: str
    dev: int | None = None
    ino: int | None = None
    made: bool = True

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> RemoveFile:
        if "path" in args and "parent" not in args:  # the form older journals hold
            path = os.path.abspath(str(args["path"]))
            return cls(os.path.dirname(path), os.path.basename(path))
        return cls(**args)

    @property
    def identity(self) -> Identity | None:
        return Identity(self.dev, self.ino) if self.dev is not None and self.ino is not None \
            else None

    def describe(self) -> str:
        return f"remove {self.parent.rstrip('/')}/{self.name}"

    def undo(self, env: UndoEnv) -> None:
        if not self.made:
            return
        if self.name in ("", ".", "..") or "/" in self.name:
            raise OperationFailed(f"refusing the undo record for {self.parent!r}/{self.name!r}: "
                                  "not a single name in a folder (a corrupt undo record)")
        try:
            d = anchor.open_dir(self.parent)
        except (InvalidParameter, FileNotFoundError):
            return  # the folder is gone: so is what was created in it
        with d:
            self._remove(d)

    def _remove(self, d: anchor.Dir) -> None:
        anchor.remove_file(d, self.name, self.identity)


@dataclass(frozen=True)
class RemoveTree(RemoveFile):
    """Remove the folder ``name`` the job created in ``parent``, with its content; the same
    identity rules as RemoveFile (without one, only an empty folder is removed)."""

    kind = "remove_tree"

    def _remove(self, d: anchor.Dir) -> None:
        anchor.remove_tree(d, self.name, self.identity)


# --------------------------------------------------------------------------- libvirt, store

@dataclass(frozen=True)
class Undefine(UndoStep[UndoEnv]):
    """Turn off and undefine the VM the job defined."""

    kind = "undefine"
    guid: str

    def describe(self) -> str:
        return f"undefine virtual machine {self.guid}"

    def undo(self, env: UndoEnv) -> None:
        try:
            if env.host.state(self.guid) in (EnabledState.ENABLED, EnabledState.PAUSED):
                env.host.turn_off(self.guid)
            env.host.undefine(self.guid)
        except NotFound:
            pass


@dataclass(frozen=True)
class Redefine(UndoStep[UndoEnv]):
    """Define the VM again as it was (``vm``: ``mapping.vmjson.to_json`` of it)."""

    kind = "redefine"
    vm: dict[str, Any]

    def describe(self) -> str:
        return "restore the previous definition of the virtual machine"

    def undo(self, env: UndoEnv) -> None:
        env.host.define(from_json(self.vm))


@dataclass(frozen=True)
class UnmarkConsumed(UndoStep[UndoEnv]):
    """Clear the in-place import mark of ``directory``, only if the import ``guid`` set it (an
    import that lost a race for the directory leaves the winner's mark). Records without a
    guid (written before it was recorded) clear it unconditionally."""

    kind = "unmark_consumed"
    directory: str
    guid: str | None = None

    def describe(self) -> str:
        return f"clear the import mark of {self.directory}"

    def undo(self, env: UndoEnv) -> None:
        with env.store.transaction():
            owner = env.store.consumed(self.directory)
            if owner is not None and (self.guid is None or owner.upper() == self.guid.upper()):
                env.store.unmark_consumed(self.directory)


@dataclass(frozen=True)
class RemoveSwitchPort(UndoStep[UndoEnv]):
    """Remove the switch port a job created (issue 14: an import's adapter's port)."""

    kind = "remove_switch_port"
    switch_id: str
    port: str

    def describe(self) -> str:
        return f"remove port {self.port} of virtual switch {self.switch_id}"

    def undo(self, env: UndoEnv) -> None:
        with env.host.networks.lock:
            sw = env.host.networks.get(self.switch_id)
            if sw is not None and sw.port(self.port) is not None:
                env.host.networks.save(replace(sw, ports=tuple(
                    p for p in sw.ports if p.name != self.port)))


STEPS: tuple[type[UndoStep[UndoEnv]], ...] = (RemoveFile, RemoveTree, Undefine, Redefine,
                                              UnmarkConsumed, RemoveSwitchPort,
                                              LiveMerge)


def undo_handlers(host: VirtHost, store: Store) -> UndoBook[UndoEnv]:
    """The book of vsms's undo steps (STEPS), acting on ``host`` and ``store``."""
    return UndoBook(STEPS, UndoEnv(host, store))


# --------------------------------------------------------------------------- run_now

class LocalContext:
    """An in-memory OpContext for an operation that runs inside the method call."""

    job_id = ""

    def __init__(self, book: UndoBook[Any]) -> None:
        self.undo: list[UndoStep[Any]] = []
        self.result: dict[str, Any] = {}
        self.cancel_event = threading.Event()
        self._book = book

    def add_undo(self, step: UndoStep[Any]) -> int:
        if not self._book.knows(step):
            raise OperationFailed(f"undo step of unknown kind {step.kind!r} (a vsms bug)")
        self.undo.append(step)
        return len(self.undo)

    def amend_undo(self, seq: int, step: UndoStep[Any]) -> None:
        if not self._book.knows(step):
            raise OperationFailed(f"undo step of unknown kind {step.kind!r} (a vsms bug)")
        self.undo[seq - 1] = step

    def progress(self, percent: float) -> None:
        return None

    def status(self, text: str) -> None:
        return None

    def describe(self, text: str) -> None:
        return None

    def check_cancelled(self) -> None:
        return None

    def set_result(self, **values: Any) -> None:
        self.result.update(values)

    def add_affected(self, element: AffectedElement) -> None:
        return None


def run_now(op: Work, book: UndoBook[Any]) -> dict[str, Any]:
    """Run ``op`` at once; on failure replay its undo steps in reverse (a failing undo step
    is logged, never masks the first error) and re-raise. Returns what it set as result."""
    ctx = LocalContext(book)
    try:
        op.run(ctx)
    except BaseException:
        for step in reversed(ctx.undo):
            try:
                book.run(step)
            except Exception:
                log.exception("undo step failed: could not %s", step.describe())
        raise
    return ctx.result
