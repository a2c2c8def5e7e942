"""DestroyVirtualSystem: remove a VM that is off or saved; its disks stay, its saved state goes,
and so do its snapshots' files (their current data merged into its disks first)."""

from __future__ import annotations

from dataclasses import dataclass

from vsms.cim.enums import EnabledState
from vsms.errors import InvalidState
from vsms.mapping.vmjson import to_json
from vsms.model.vm import VirtualSystem
from vsms.operations.modify import describe_state, load_system
from vsms.operations.paths import StorageRoots
from vsms.operations.snapshots import drop_for_destroy
from vsms.operations.undo import OpContext, Redefine
from vsms.virt.host import VirtHost

DESTROYABLE = (EnabledState.DISABLED, EnabledState.SUSPENDED)


def _check_state(host: VirtHost, vs: VirtualSystem) -> None:
    state = host.state(vs.guid)
    if state not in DESTROYABLE:
        raise InvalidState(
            f"cannot destroy '{vs.name}' ({vs.guid}): it is {describe_state(state)}; turn it "
            "off (RequestStateChange 3) or save it (32769) first")


@dataclass
class DestroySystem:
    """Undefine the VM (undo: define it again; a discarded saved state does not come back)."""

    host: VirtHost
    vs: VirtualSystem
    roots: StorageRoots | None = None  # given: the snapshots' files go first (snapshots.md)

    def run(self, ctx: OpContext) -> None:
        ctx.check_cancelled()
        ctx.status(f"Destroying '{self.vs.name}'")
        _check_state(self.host, self.vs)
        vs = self.vs
        if self.roots is not None:
            vs = drop_for_destroy(self.host, self.roots, vs.guid, ctx)
        ctx.add_undo(Redefine(to_json(vs)))
        self.host.undefine(vs.guid)
        ctx.progress(100)


def prepare_destroy(host: VirtHost, guid: str,
                    roots: StorageRoots | None = None) -> DestroySystem:
    """Plan the destruction; InvalidState (32775) unless the VM is off or saved."""
    vs = load_system(host, guid)
    _check_state(host, vs)
    return DestroySystem(host, vs, roots)
