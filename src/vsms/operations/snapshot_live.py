"""Merges of a running VM's snapshot images with libvirt block commit, crash-safe.

``collapse`` (``operations.snapshot_disks``) asks a :func:`live_merger` to merge an image the
running (or paused) VM has open into its backing file. Before the block job starts, a
:class:`LiveMerge` record goes into the job's undo journal; once the job is over (committed
and, for the image the VM writes, pivoted) ``finish_live_merge`` points every definition
that named the merged image at its backing file, re-parents the image's other children onto
it and lists it as discarded (collapse then removes it), and the record is amended to done.

If the service dies meanwhile, the block job goes on in QEMU. At start-up, job recovery runs
the record: it cancels a block job still running on that disk (an active commit waits for a
pivot forever; cancelling keeps the VM on the image it wrote, whose view the commit never
changed) and, when the image is no longer in the VM's chain (the commit had completed: an
intermediate one ends by itself, an active one may have been pivoted), it finishes the
bookkeeping as the job would have. Either way the VM is consistent, and the merge that did
not happen is redone by the next snapshot job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from vsms.errors import VsmsError
from vsms.jobs.undo import UndoStep
from vsms.model.vm import VirtualSystem

if TYPE_CHECKING:
    from vsms.jobs.context import OpContext
    from vsms.operations.undo import UndoEnv
    from vsms.virt.host import VirtHost

log = logging.getLogger(__name__)

#: merge(vs, child, target) -> the VM as defined after it, or None when it was not done
LiveMergeFn = Callable[[VirtualSystem, str, str], "VirtualSystem | None"]


@dataclass(frozen=True)
class LiveMerge(UndoStep["UndoEnv"]):
    """A block commit of ``child`` into ``target`` in the running VM ``guid`` (``done``: it
    was finished or settled by the job: nothing left to do)."""

    kind = "snapshot_live_merge"
    guid: str
    child: str
    target: str
    done: bool = False

    def describe(self) -> str:
        return f"settle the merge of {self.child} into {self.target}"

    def undo(self, env: UndoEnv) -> None:
        if not self.done:
            from vsms.operations.snapshot_disks import finish_live_merge  # no import cycle
            finish_live_merge(env.host, self.guid, self.child, self.target)


def live_merger(host: VirtHost, ctx: OpContext, first: float = 30.0, last: float = 95.0,
                deferred: Callable[[str], None] = lambda _reason: None,
                started: Callable[[], None] = lambda: None) -> LiveMergeFn:
    """What ``collapse`` calls to merge an image the running VM has open: a journaled block
    commit whose progress is the job's from ``first`` to ``last`` percent (each merge takes
    half of what is left of that range); ``started`` is called before the first one (the VM
    shows Merging Disks from then on), ``deferred`` is told why when one cannot be done."""
    span = [first]

    def merge(vs: VirtualSystem, child: str, target: str) -> VirtualSystem | None:
        from vsms.operations.snapshot_disks import finish_live_merge
        if span[0] == first:
            started()
        lo = span[0]
        hi = span[0] = lo + (last - lo) / 2
        step = LiveMerge(vs.guid, child, target)
        seq = ctx.add_undo(step)
        ctx.status(f"Merging {child} into {target} while the virtual machine runs")
        try:
            host.block_commit(vs.guid, child, target,
                              lambda f: ctx.progress(lo + (hi - lo) * f))
        except VsmsError as exc:
            log.warning("VM %s: live merge of %s into %s failed, deferred until it is off: "
                        "%s", vs.guid, child, target, exc)
            ctx.status(f"The merge of {child} waits until the virtual machine is off ({exc})")
            deferred(str(exc))
            finish_live_merge(host, vs.guid, child, target)  # settles; changes nothing
            ctx.amend_undo(seq, replace(step, done=True))
            return None
        new = finish_live_merge(host, vs.guid, child, target)
        ctx.amend_undo(seq, replace(step, done=True))
        return new
    return merge
