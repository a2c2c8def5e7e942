"""The snapshot and disk-merge methods of ``VirtHost`` (``vsms.virt.host``), kept apart.

``SnapshotDisks`` is a mixin: every method acts on one VM through ``VirtHost._act`` (GUID
checked, domain ours, its steady state read, libvirt errors mapped to ``vsms.errors``) and is
thread-safe like the rest of VirtHost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import libvirt

from vsms.cim.enums import EnabledState
from vsms.errors import InvalidState
from vsms.virt import blockcommit, savedstate, snapxml
from vsms.virt.livestates import LiveStates
from vsms.virt.states import describe

log = logging.getLogger("vsms.virt.host")  # the logger these methods always used


class _Acting(Protocol):
    """What the mixin needs of VirtHost."""

    uri: str
    _states: LiveStates

    def _act(self, guid: str, verb: str,
             action: Callable[[Any, EnabledState, str], Any]) -> Any: ...


class SnapshotDisks:
    """Switching a VM's disks to snapshot overlays (live or in its saved state), restoring a
    memory state, and merging disks live (block commit)."""

    def switch_disks_live(self: _Acting, guid: str, overlays: dict[str, str],
                          memory: str = "") -> bool:
        """Make the running (or paused) VM write each disk whose current image is a key of
        ``overlays`` to the overlay the value names, which must exist with that image as its
        backing file (a libvirt external snapshot reusing it, with no libvirt snapshot
        metadata); with ``memory``, its memory state is saved to that new file meanwhile (the
        VM paused, then running again). Without it the guest's file systems are frozen
        through the QEMU guest agent meanwhile when one answers; returns whether they were.
        The persistent definition is not changed (the caller defines it)."""
        def act(dom: Any, state: EnabledState, label: str) -> bool:
            if state not in (EnabledState.ENABLED, EnabledState.PAUSED):
                raise InvalidState(f"cannot switch the disks of {label} live: "
                                   f"{describe(state)}")
            xml = snapxml.snapshot_disks_xml(dom.XMLDesc(0), overlays, memory)
            flags = (libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA
                     | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT
                     | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC)
            if memory:
                dom.snapshotCreateXML(xml, flags)
                return False
            flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY
            try:
                dom.snapshotCreateXML(xml, flags | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE)
                return True
            except libvirt.libvirtError as exc:  # no guest agent: take it without freezing
                log.info("%s: no quiesced snapshot (%s); taking it without", label,
                         exc.get_error_message())
            dom.snapshotCreateXML(xml, flags)
            return False
        done: bool = self._act(guid, "snapshot the disks of", act)
        return done

    def switch_saved_disks(self: _Acting, guid: str, overlays: dict[str, str]) -> None:
        """Make the saved state of a saved (Suspended) VM resume onto the overlays: each disk
        source of the XML stored with its managed save image that is a key of ``overlays``
        becomes the value (format qcow2)."""
        def act(dom: Any, state: EnabledState, label: str) -> None:
            if state is not EnabledState.SUSPENDED:
                raise InvalidState(f"cannot change the saved state of {label}: "
                                   f"{describe(state)}")
            xml = snapxml.retarget_disks(dom.managedSaveGetXMLDesc(0), overlays)
            dom.managedSaveDefineXML(xml, 0)
        self._act(guid, "change the saved state of", act)

    def saved_state_file(self: _Acting, guid: str) -> str:
        """The file holding the memory state of the saved (Suspended) VM (libvirt's managed
        save image, ``virt.savedstate``), to be read only."""
        def act(dom: Any, state: EnabledState, label: str) -> str:
            if state is not EnabledState.SUSPENDED:
                raise InvalidState(f"{label} has no saved state: {describe(state)}")
            return savedstate.managed_save_file(dom, self.uri, label)
        path: str = self._act(guid, "find the saved state of", act)
        return path

    def restore_as_saved(self: _Acting, guid: str, memory: str) -> None:
        """Make the turned-off VM saved (Suspended) with the memory state in the file
        ``memory`` (left as it is), resumed onto the disks its definition names now."""
        def act(dom: Any, state: EnabledState, label: str) -> None:
            if state is not EnabledState.DISABLED:
                raise InvalidState(f"cannot restore a memory state into {label}: "
                                   f"{describe(state)}")
            conn = dom.connect()
            xml = snapxml.disks_from(conn.saveImageGetXMLDesc(memory, 0),
                                     dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            conn.restoreFlags(memory, xml, libvirt.VIR_DOMAIN_SAVE_PAUSED)
            try:
                dom.managedSave(libvirt.VIR_DOMAIN_SAVE_RUNNING)  # starts running again
            except libvirt.libvirtError:
                dom.destroy()
                raise
            self._states.observe(dom)
        self._act(guid, "restore the memory state of", act)

    def block_commit(self: _Acting, guid: str, top: str, base: str,
                     progress: Callable[[float], None]) -> None:
        """Merge ``top`` into its backing file ``base`` while the VM runs or is paused
        (``virt.blockcommit``: an active commit and pivot when ``top`` is the image the VM
        writes, else an intermediate commit). The persistent definition is not changed."""
        def act(dom: Any, state: EnabledState, label: str) -> None:
            if state not in (EnabledState.ENABLED, EnabledState.PAUSED):
                raise InvalidState(f"cannot merge the disks of {label} live: "
                                   f"{describe(state)}")
            blockcommit.commit(dom, top, base, progress, label)
        self._act(guid, "merge the disks of", act)

    def settle_block_commit(self: _Acting, guid: str, top: str) -> bool:
        """Cancel a block job a crash left on the VM's disk holding ``top``; whether ``top``
        is still in a running chain (True also when the VM does not run)."""
        def act(dom: Any, _state: EnabledState, _label: str) -> bool:
            return blockcommit.settle(dom, top)
        still: bool = self._act(guid, "look at the disk merges of", act)
        return still
