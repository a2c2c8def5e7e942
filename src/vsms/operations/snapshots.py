"""Create, apply and remove snapshots of a VM (the work of the snapshot jobs).

Each operation changes the VM's definition (its snapshot tree lives in our metadata, see
``virt.metadata``) and its disks (``operations.snapshot_disks``) in two phases:

1. reversible: new overlays are created (journaled ``remove_file``) and the VM is redefined
   (journaled ``redefine`` of the previous definition); a failure or a crash here is undone
   completely by the job engine;
2. past the point of no return: the undo records are amended into no-ops (the new definition
   again, ``made: false`` for the overlays), a saved state the apply discards is discarded,
   then ``collapse`` removes and merges what nobody references any more. Every step of a
   collapse leaves a consistent VM and the next snapshot operation finishes one that stopped.

A snapshot is taken of a VM that is off, running, paused or saved, which keeps its state: a
running or paused VM on qcow2 chains is switched onto the overlays live with its memory state
saved next to them; with a VHD/VHDX in a chain (QEMU cannot save it) or a saved VM the snapshot
is disk-only; a saved VM's saved state is copied into the snapshot and its stored XML
retargeted onto the overlays. For a running or saved
VM the point of no return comes before that switch, which is compensated when it fails. A
snapshot is applied to a VM that is off or saved (the saved state is discarded); the VM ends
off, or saved when the snapshot holds a memory state. One is removed in any state: the disks
a running or paused VM has open are merged live (block commit, ``operations.snapshot_live``),
those of a saved VM once it is off.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from vsms.cim.enums import EnabledState
from vsms.disks import digests
from vsms.disks.digests import DigestBook
from vsms.errors import (
    InvalidParameter,
    InvalidState,
    NotFound,
    OperationFailed,
    VsmsError,
)
from vsms.jobs.undo import UndoStep
from vsms.mapping.vmjson import to_json
from vsms.model.vm import Snapshot, VirtualSystem, new_guid
from vsms.operations.modify import describe_state, load_system
from vsms.operations.paths import StorageRoots
from vsms.operations.snapshot_disks import (
    collapse,
    copy_memory,
    graph_of,
    is_overlay_of,
    memory_file,
    new_overlays,
    qcow2_only,
    referenced,
    remove_overlay,
    snapshot_dir,
    use_overlays,
)
from vsms.operations.snapshot_live import live_merger
from vsms.operations.undo import OpContext, Redefine, RemoveFile
from vsms.virt.cache import clone
from vsms.virt.host import VirtHost

log = logging.getLogger(__name__)

CREATABLE = (EnabledState.DISABLED, EnabledState.ENABLED, EnabledState.PAUSED,
             EnabledState.SUSPENDED)
APPLICABLE = (EnabledState.DISABLED, EnabledState.SUSPENDED)


def snapshot_name(vm_name: str, when: datetime) -> str:
    """ElementName of a new snapshot as Hyper-V writes it: ``VM - (12/2/2026 - 5:45:48 AM)``
    (the host's local time)."""
    hour = when.hour % 12 or 12
    half = "AM" if when.hour < 12 else "PM"
    return (f"{vm_name} - ({when.month}/{when.day}/{when.year} - "
            f"{hour}:{when.minute:02d}:{when.second:02d} {half})")


def list_snapshots(vs: VirtualSystem) -> list[Snapshot]:
    """The snapshots of ``vs``, oldest first (what GetSummaryInformation's Snapshots lists)."""
    return sorted(vs.snapshots, key=lambda s: s.created)


def find_snapshot(host: VirtHost, snapshot_id: str) -> tuple[VirtualSystem, Snapshot]:
    """The VM holding the snapshot ``snapshot_id`` and the snapshot; NotFound/InvalidParameter
    (a VM's current settings are not a snapshot) naming the cause."""
    sid = snapshot_id.upper()
    vs = host.get_system(sid)
    if vs is not None:
        raise InvalidParameter(
            f"Microsoft:{sid} is the current settings of virtual machine '{vs.name}', not a "
            "snapshot: pass a snapshot's Msvm_VirtualSystemSettingData (SettingType 5)")
    owner = host.snapshot_owner(sid)
    found = host.get_system(owner) if owner is not None else None
    snap = next((s for s in found.snapshots if s.id.upper() == sid), None) if found else None
    if found is not None and snap is not None:
        return found, snap
    raise NotFound(f"there is no snapshot Microsoft:{sid}: list the snapshots of the virtual "
                   "machine (Msvm_VirtualSystemSettingData with SettingType 5) and pass one")


def _state_check(host: VirtHost, vs: VirtualSystem, allowed: tuple[EnabledState, ...],
                 what: str, hint: str) -> EnabledState:
    state = host.state(vs.guid)
    if state not in allowed:
        raise InvalidState(f"cannot {what} of '{vs.name}' ({vs.guid}): it is "
                           f"{describe_state(state)}; {hint}")
    return state


def _frozen_config(vs: VirtualSystem) -> VirtualSystem:
    config = clone(vs)
    config.snapshots, config.previous_snapshot, config.last_applied = [], "", ""
    return config


class _Recorder:
    """The journal of the overlays an operation creates, so they can be kept at the point of
    no return (their ``remove_file`` records amended to ``made: false``)."""

    def __init__(self, ctx: OpContext) -> None:
        self.ctx = ctx
        self.steps: dict[int, UndoStep[Any]] = {}

    def add_undo(self, step: UndoStep[Any]) -> int:
        seq = self.ctx.add_undo(step)
        self.steps[seq] = step
        return seq

    def amend_undo(self, seq: int, step: UndoStep[Any]) -> None:
        self.ctx.amend_undo(seq, step)
        self.steps[seq] = step

    def keep(self) -> None:
        for seq, step in self.steps.items():
            if isinstance(step, RemoveFile) and step.made:
                self.amend_undo(seq, dataclasses.replace(step, made=False))


def _tidy(host: VirtHost, roots: StorageRoots, vs: VirtualSystem, ctx: OpContext,
          *, live: bool) -> VirtualSystem:
    return collapse(vs, roots, host.define, live=live, progress=ctx.status)


@dataclasses.dataclass
class CreateSnapshot:
    """Freeze the VM's disks under new overlays and record its settings as a snapshot."""

    host: VirtHost
    roots: StorageRoots
    vs: VirtualSystem
    snapshot_id: str
    live: bool = False  # the VM ran (or was saved) when it was prepared
    memory: str = ""  # the file for its memory state ("": disk-only)
    book: DigestBook | None = None  # told that the images this snapshot freezes are frozen

    def run(self, ctx: OpContext) -> None:
        ctx.check_cancelled()
        ctx.status(f"Creating a snapshot of '{self.vs.name}'")
        vs = load_system(self.host, self.vs.guid)
        state = _state_check(self.host, vs, CREATABLE, "take a snapshot", _CREATE_HINT)
        live = state is not EnabledState.DISABLED
        vs = _tidy(self.host, self.roots, vs, ctx, live=live)
        ctx.progress(10)
        now = datetime.now().astimezone()
        snap = Snapshot(self.snapshot_id, snapshot_name(vs.name, now), now,
                        vs.previous_snapshot, _frozen_config(vs))
        files = _Recorder(ctx)
        overlays = new_overlays(files, self.roots, snapshot_dir(vs), vs.disk_media())
        ctx.progress(50)
        saved = state is EnabledState.SUSPENDED and bool(self.memory) and bool(overlays)
        if saved:  # a copy of the saved state (journaled: a failure removes it)
            ctx.status(f"Copying the saved state of '{vs.name}'")
            copy_memory(files, self.roots, self.host.saved_state_file(vs.guid), self.memory,
                        lambda f: ctx.progress(50 + 40 * f))
        new = clone(vs)
        use_overlays(new, overlays)
        new.snapshots.append(snap)
        new.previous_snapshot = snap.id
        seq = ctx.add_undo(Redefine(to_json(vs)))
        self.host.define(new)  # a crash before the job ends undoes it all: consistent
        # the memory state is saved only if the VM still runs (or is saved) as when it was
        # prepared
        memory = self.memory if state in (EnabledState.ENABLED, EnabledState.PAUSED) or saved \
            else ""
        if live and overlays:
            self._switch(ctx, files, seq, vs, new, overlays, state, memory)
        if memory and overlays:
            new.snapshots[-1].memory = memory  # claimed once the file is complete
            self.host.define(new)
        for media in vs.disk_media():  # nothing writes these any more
            if media.dev_id in overlays:
                digests.freeze(self.book, media.path)
        ctx.set_result(snapshot=snap.id)
        ctx.progress(100)

    def _switch(self, ctx: OpContext, files: _Recorder, seq: int, old: VirtualSystem,
                new: VirtualSystem, overlays: dict[str, str], state: EnabledState,
                memory: str) -> None:
        """Move the running VM (or the saved state of a saved one) onto the overlays. The
        point of no return comes first (a crash after it keeps the snapshot; if the switch
        had not happened yet the VM goes on writing the frozen images until it stops, so the
        snapshot holds that state: no data is lost); a failed switch is compensated here."""
        files.keep()
        ctx.amend_undo(seq, Redefine(to_json(new)))
        paths = {m.path: overlays[m.dev_id] for m in old.disk_media() if m.dev_id in overlays}
        quiesced = False
        try:
            if state is EnabledState.SUSPENDED:
                self.host.switch_saved_disks(old.guid, paths)
            else:
                quiesced = self.host.switch_disks_live(old.guid, paths, memory)
        except Exception:
            try:
                self.host.define(old)
                for path in [*overlays.values(), *([memory] if memory else [])]:
                    remove_overlay(self.roots, path)
            except VsmsError:
                log.exception("VM %s: could not take back a failed snapshot", old.guid)
            raise
        ctx.status("Snapshot taken with the memory state" if memory else
                   "Snapshot taken without the memory state" + (
                       ", the guest's file systems frozen meanwhile" if quiesced else ""))


_CREATE_HINT = ("wait until it is running, paused, saved or off")


def prepare_create(host: VirtHost, roots: StorageRoots, guid: str,
                   book: DigestBook | None = None) -> CreateSnapshot:
    vs = load_system(host, guid)
    _state_check(host, vs, CREATABLE, "take a snapshot", _CREATE_HINT)
    for media in vs.disk_media():  # a root outside the storage roots fails now, not in the job
        folder = snapshot_dir(vs)
        roots.confine(folder, f"the snapshot folder of disk {media.path}")
    state = host.state(guid)
    sid = new_guid()
    # the memory state is saved when QEMU can: a running or paused VM on qcow2 chains only;
    # a saved VM's saved state is copied
    memory = memory_file(vs, sid) if (state in (EnabledState.ENABLED, EnabledState.PAUSED)
                                      and vs.disk_media() and qcow2_only(graph_of(vs), vs)) \
        or (state is EnabledState.SUSPENDED and vs.disk_media()) else ""
    return CreateSnapshot(host, roots, vs, sid, state is not EnabledState.DISABLED, memory,
                          book)


@dataclasses.dataclass
class ApplySnapshot:
    """Discard the VM's current disks and settings for a snapshot's (new overlays on its
    frozen images); the VM ends turned off, or saved when the snapshot holds its memory."""

    host: VirtHost
    roots: StorageRoots
    vs: VirtualSystem
    snap: Snapshot

    def run(self, ctx: OpContext) -> None:
        ctx.check_cancelled()
        ctx.status(f"Applying snapshot '{self.snap.name}' to '{self.vs.name}'")
        vs = load_system(self.host, self.vs.guid)
        state = _state_check(self.host, vs, APPLICABLE, "apply a snapshot", _APPLY_HINT)
        if not any(s.id == self.snap.id for s in vs.snapshots):
            raise NotFound(f"snapshot '{self.snap.name}' of '{vs.name}' was removed meanwhile")
        ctx.progress(10)
        new = clone(self.snap.config)
        for name in ("guid", "name", "created", "external_data_root", "snapshot_data_root",
                     "scope_of_residence", "imported_from", "snapshots"):
            setattr(new, name, clone(getattr(vs, name)))
        new.previous_snapshot = new.last_applied = self.snap.id
        frozen = {m.path for s in vs.snapshots for m in s.config.disk_media()}
        new.discarded = [*vs.discarded, *(m.path for m in vs.disk_media()
                                          if is_overlay_of(vs, m.path) and m.path not in frozen)]
        files = _Recorder(ctx)
        overlays = new_overlays(files, self.roots, snapshot_dir(vs),
                                self.snap.config.disk_media())
        use_overlays(new, overlays)
        ctx.progress(50)
        seq = ctx.add_undo(Redefine(to_json(vs)))
        self.host.define(new)
        if state is EnabledState.SUSPENDED:
            self.host.discard_saved_state(vs.guid)
        # the point of no return: from here the new definition and its overlays stay (the
        # files first: a crash in between restores the old definition and leaves unused
        # overlays, which the next collapse removes)
        files.keep()
        ctx.amend_undo(seq, Redefine(to_json(new)))
        ctx.progress(60)
        if self.snap.memory:
            ctx.status(f"Restoring the memory state of '{self.snap.name}'")
            try:
                self.host.restore_as_saved(vs.guid, self.snap.memory)
            except VsmsError as exc:
                raise OperationFailed(
                    f"the disks and settings of snapshot '{self.snap.name}' were applied, but "
                    f"its memory state could not be restored ({exc}): the virtual machine is "
                    "off; start it to boot from the snapshot's disks") from exc
        ctx.progress(80)
        _tidy(self.host, self.roots, load_system(self.host, vs.guid), ctx, live=False)
        ctx.progress(100)


_APPLY_HINT = "turn it off (RequestStateChange 3) or save it first"


def prepare_apply(host: VirtHost, roots: StorageRoots, guid: str,
                  snapshot_id: str) -> ApplySnapshot:
    owner, snap = find_snapshot(host, snapshot_id)
    if owner.guid.upper() != guid.upper():
        raise InvalidParameter(
            f"snapshot '{snap.name}' belongs to virtual machine '{owner.name}' ({owner.guid}), "
            f"not to {guid}: pass that machine as ComputerSystem, or one of this machine's "
            "snapshots")
    _state_check(host, owner, APPLICABLE, "apply a snapshot", _APPLY_HINT)
    return ApplySnapshot(host, roots, owner, snap)


def subtree(vs: VirtualSystem, root_id: str) -> list[str]:
    """``root_id`` and every snapshot below it."""
    found = [root_id]
    for sid in found:
        found.extend(s.id for s in vs.snapshots if s.parent == sid and s.id not in found)
    return found


@dataclasses.dataclass
class RemoveSnapshot:
    """Remove a snapshot (its children re-parented to its parent) or a whole subtree, then
    merge the disk images nobody needs any more."""

    host: VirtHost
    roots: StorageRoots
    vs: VirtualSystem
    snap: Snapshot
    tree: bool
    on_merge: Callable[[], None] = lambda: None  # the merges of a running VM begin

    def run(self, ctx: OpContext) -> None:
        ctx.check_cancelled()
        what = "snapshot subtree" if self.tree else "snapshot"
        ctx.status(f"Removing the {what} '{self.snap.name}' of '{self.vs.name}'")
        vs = load_system(self.host, self.vs.guid)
        if not any(s.id == self.snap.id for s in vs.snapshots):
            raise NotFound(f"snapshot '{self.snap.name}' of '{vs.name}' was removed meanwhile")
        gone = set(subtree(vs, self.snap.id) if self.tree else [self.snap.id])
        parent = self.snap.parent
        new = clone(vs)
        new.snapshots = [s for s in new.snapshots if s.id not in gone]
        for s in new.snapshots:
            if s.parent in gone:
                s.parent = parent
        if new.previous_snapshot in gone:
            new.previous_snapshot = parent
        if new.last_applied in gone:
            new.last_applied = ""
        kept = {m.path for m in referenced(new)}
        new.discarded = [*vs.discarded, *(m.path for s in vs.snapshots if s.id in gone
                                          for m in s.config.disk_media()
                                          if is_overlay_of(vs, m.path) and m.path not in kept)]
        ctx.progress(10)
        # the point of no return is the new definition itself: nothing to undo after it
        self.host.define(new)
        ctx.progress(30)
        state = self.host.state(vs.guid)
        merging = state in (EnabledState.ENABLED, EnabledState.PAUSED)  # QEMU has the disks
        collapse(load_system(self.host, vs.guid), self.roots, self.host.define,
                 live=state is not EnabledState.DISABLED, progress=ctx.status,
                 merge_live=live_merger(self.host, ctx, deferred=lambda why: ctx.describe(
                     f"Removed the snapshot '{self.snap.name}' of '{vs.name}' ({vs.guid}); "
                     "the merge of its disks waits until the virtual machine is off (then "
                     f"the next snapshot operation does it): {why}"),
                     started=self.on_merge) if merging else None)
        ctx.progress(100)


def prepare_remove(host: VirtHost, roots: StorageRoots, snapshot_id: str,
                   tree: bool) -> RemoveSnapshot:
    owner, snap = find_snapshot(host, snapshot_id)
    return RemoveSnapshot(host, roots, owner, snap, tree)


def tidy_after_crash(host: VirtHost, roots: StorageRoots) -> int:
    """Finish what snapshot operations a crash interrupted past their point of no return:
    ``collapse`` each VM that has snapshots or an overlay folder (merges of a running VM's
    open disks still wait). Returns how many VMs were looked at; errors are logged, never
    raised (the service starts anyway; the next snapshot operation of that VM tries again)."""
    seen = 0
    for vs in host.list_systems():
        folder = snapshot_dir(vs)
        if not vs.snapshots and not vs.discarded and not (folder and os.path.isdir(folder)):
            continue
        seen += 1
        try:
            live = host.state(vs.guid) is not EnabledState.DISABLED
            collapse(vs, roots, host.define, live=live)
        except VsmsError as exc:
            log.warning("VM %s: the snapshot disks could not be tidied: %s", vs.guid, exc)
    return seen


def drop_for_destroy(host: VirtHost, roots: StorageRoots, guid: str,
                     ctx: OpContext) -> VirtualSystem:
    """What DestroyVirtualSystem does first to a VM with snapshots, as Hyper-V does: the
    snapshots' files go (their overlays, their memory files; a saved state is discarded
    first), the VM's current data is merged into the disks it was given, which stay. Every
    snapshot record is dropped (the point of no return: a crash after it leaves the VM defined
    without snapshots, and the start-up tidy finishes the merges), then a collapse merges and
    removes what nobody names, and the empty overlay folder is removed. An image that cannot be
    merged (the parent of two branches, outside the roots) stays: no data is deleted. Returns
    the VM as defined now."""
    vs = load_system(host, guid)
    folder = snapshot_dir(vs)
    current = [m.path for m in vs.disk_media() if is_overlay_of(vs, m.path)]
    if not (vs.snapshots or vs.discarded or current or (folder and os.path.isdir(folder))):
        return vs
    ctx.status(f"Removing the snapshots of '{vs.name}' and merging its disks")
    if host.state(guid) is EnabledState.SUSPENDED:
        host.discard_saved_state(guid)  # destroyed anyway; its chain can merge now
    new = clone(vs)
    new.snapshots, new.previous_snapshot, new.last_applied = [], "", ""
    kept = {m.path for m in referenced(new)}
    new.discarded = [*vs.discarded, *(m.path for s in vs.snapshots
                                      for m in s.config.disk_media()
                                      if is_overlay_of(vs, m.path) and m.path not in kept)]
    host.define(new)
    ctx.progress(20)
    vs = collapse(load_system(host, guid), roots, host.define, live=False,
                  progress=ctx.status)
    ctx.progress(90)
    if folder and roots.contains(Path(os.path.realpath(folder))):
        try:
            os.rmdir(folder)  # only when empty: whatever is left in it is kept
        except OSError as exc:
            log.info("VM %s: the overlay folder %s stays: %s", guid, folder, exc)
    return vs

