"""Undo handlers for the job journal, and running an operation within a method call.

``undo_handlers(host, store)`` gives the job manager one handler per undo kind of the contract;
each is idempotent (undoing something already undone is not an error), because recovery after a
crash may replay a record whose side effect never happened.

Operations that finish within the method call (DefineVirtualSystem, Modify…, Add/Remove…
Resources) run through ``run_now``: the same ``run(ctx)`` as a job, with the undo records kept
in memory and replayed in reverse if the operation fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from vsms.cim.enums import EnabledState
from vsms.errors import NotFound, OperationFailed
from vsms.mapping.vmjson import from_json
from vsms.operations.files import undo_remove_file, undo_remove_tree
from vsms.store.db import Store
from vsms.virt.host import VirtHost

log = logging.getLogger(__name__)

UndoHandler = Callable[[dict[str, Any]], None]


class OpContext(Protocol):
    """What an operation's ``run`` uses of its context (a job's JobContext provides it)."""

    def add_undo(self, kind: str, **args: Any) -> int: ...

    def progress(self, percent: float) -> None: ...

    def status(self, text: str) -> None: ...

    def check_cancelled(self) -> None: ...

    def set_result(self, **values: Any) -> None: ...


class Operation(Protocol):
    def run(self, ctx: OpContext) -> None: ...


class LocalContext:
    """An in-memory OpContext for an operation that runs inside the method call."""

    def __init__(self, kinds: frozenset[str]) -> None:
        self.undo: list[tuple[str, dict[str, Any]]] = []
        self.result: dict[str, Any] = {}
        self._kinds = kinds

    def add_undo(self, kind: str, **args: Any) -> int:
        if kind not in self._kinds:
            raise OperationFailed(f"undo step of unknown kind {kind!r} (a vsms bug)")
        self.undo.append((kind, dict(args)))
        return len(self.undo)

    def amend_undo(self, seq: int, **args: Any) -> None:
        self.undo[seq - 1] = (self.undo[seq - 1][0], dict(args))

    def progress(self, percent: float) -> None:
        return None

    def status(self, text: str) -> None:
        return None

    def check_cancelled(self) -> None:
        return None

    def set_result(self, **values: Any) -> None:
        self.result.update(values)


def run_now(op: Operation, handlers: dict[str, UndoHandler]) -> dict[str, Any]:
    """Run ``op`` at once; on failure replay its undo records in reverse (a failing undo step
    is logged, never masks the first error) and re-raise. Returns what it set as result."""
    ctx = LocalContext(frozenset(handlers))
    try:
        op.run(ctx)
    except BaseException:
        for kind, args in reversed(ctx.undo):
            try:
                handlers[kind](args)
            except Exception:
                log.exception("undo step %s %s failed", kind, args)
        raise
    return ctx.result


def undo_handlers(host: VirtHost, store: Store) -> dict[str, UndoHandler]:
    """One handler per undo kind: remove_file, remove_tree (``operations.files``: only what
    the job created), undefine, redefine, unmark_consumed."""

    def undefine(args: dict[str, Any]) -> None:
        guid = str(args["guid"])
        try:
            if host.state(guid) in (EnabledState.ENABLED, EnabledState.PAUSED):
                host.turn_off(guid)
            host.undefine(guid)
        except NotFound:
            pass

    def redefine(args: dict[str, Any]) -> None:
        host.define(from_json(args["vm"]))

    def unmark_consumed(args: dict[str, Any]) -> None:
        # Only the import that set the mark may clear it: an import that lost a race for the
        # directory rolls back without touching the winner's mark. Records without a guid
        # (written before it was recorded) clear unconditionally.
        directory, guid = str(args["directory"]), args.get("guid")
        with store.transaction():
            owner = store.consumed(directory)
            if owner is not None and (guid is None or owner.upper() == str(guid).upper()):
                store.unmark_consumed(directory)

    return {
        "remove_file": undo_remove_file,
        "remove_tree": undo_remove_tree,
        "undefine": undefine,
        "redefine": redefine,
        "unmark_consumed": unmark_consumed,
    }
