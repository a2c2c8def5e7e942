"""ModifyVirtualSystem, and the one side effect every configuration change shares.

A configuration change is planned on a copy of the VM (``prepare_*``, no side effects) and
applied by ``ReplaceSystem.run``: one ``host.define`` of the new definition, preceded by a
``redefine`` undo record holding the old one.
"""

from __future__ import annotations

from dataclasses import dataclass

import pywbem

from vsms.cim.enums import EnabledState
from vsms.errors import InvalidState, NotFound
from vsms.mapping.checks import Checked
from vsms.mapping.system import apply_system_settings
from vsms.mapping.vmjson import to_json
from vsms.model.vm import VirtualSystem
from vsms.operations.undo import OpContext, Redefine
from vsms.virt.host import VirtHost


def load_system(host: VirtHost, guid: str) -> VirtualSystem:
    """The VM with this GUID, or NotFound naming it."""
    vs = host.get_system(guid)
    if vs is None:
        raise NotFound(f"virtual machine {guid} does not exist: pass the path of an existing "
                       "Msvm_ComputerSystem")
    return vs


def require_off(host: VirtHost, vs: VirtualSystem, what: str) -> None:
    """InvalidState unless the VM is turned off (changing devices needs it off)."""
    state = host.state(vs.guid)
    if state is not EnabledState.DISABLED:
        raise InvalidState(
            f"cannot {what} of '{vs.name}' ({vs.guid}): it is {describe_state(state)}; turn it "
            "off first (RequestStateChange 3)")


def describe_state(state: EnabledState) -> str:
    return {
        EnabledState.ENABLED: "running", EnabledState.DISABLED: "off",
        EnabledState.PAUSED: "paused", EnabledState.SUSPENDED: "saved",
        EnabledState.STARTING: "starting", EnabledState.STOPPING: "stopping",
        EnabledState.SAVING: "saving", EnabledState.PAUSING: "pausing",
        EnabledState.RESUMING: "resuming",
    }.get(state, f"in state {int(state)}")


def check_defineable(host: VirtHost, vs: VirtualSystem) -> Checked:
    """The planned VM checked against every rule with the host's limits (the one check of
    its definition: ``host.define`` takes the result as it is); InvalidParameter listing every
    broken rule."""
    return host.check(vs)


@dataclass
class ReplaceSystem:
    """Replace the VM's definition by ``new`` (undo: define ``old`` again)."""

    host: VirtHost
    old: VirtualSystem
    new: VirtualSystem
    checked: Checked | None = None  # ``new`` as check_defineable passed it (None: define checks)

    def run(self, ctx: OpContext) -> None:
        ctx.check_cancelled()
        ctx.add_undo(Redefine(to_json(self.old)))
        self.host.define(self.checked or self.new)
        ctx.progress(100)


def prepare_modify(host: VirtHost, guid: str, setting: pywbem.CIMInstance) -> ReplaceSystem:
    """Plan ModifyVirtualSystem: apply an embedded VSSD or VSGSD (ElementName, Notes, BootOrder,
    SnapshotDataRoot, ScopeOfResidence) to the VM, in any state."""
    old = load_system(host, guid)
    new = apply_system_settings(old, setting)
    return ReplaceSystem(host, old, new, check_defineable(host, new))
