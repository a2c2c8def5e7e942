"""Snapshot methods of Msvm_VirtualSystemManagementService.

CreateVirtualSystemSnapshot, ApplyVirtualSystemSnapshotEx, RemoveVirtualSystemSnapshot and
RemoveVirtualSystemSnapshotTree run as an Msvm_ConcreteJob (4096 + Job); v1's
ApplyVirtualSystemSnapshot has no Job parameter and completes within the call (0). While one
runs, the VM's OperationalStatus carries 32768 (Creating Snapshot), 32769 (Applying
Snapshot) or 32770 (Deleting Snapshot) and any other change of that VM answers 32775.
CreateVirtualSystemSnapshot also returns the new snapshot's settings in SnapshotSettingData,
its job's Msvm_AffectedJobElement leads to them, and its Description says whether the memory
state is captured. The work is in ``operations.snapshots``.
"""

from __future__ import annotations

from vsms.auth.policy import Role
from vsms.cim import names
from vsms.cim.enums import ElementEffects, OperationalStatus, RequestedState, ReturnCode
from vsms.errors import InvalidParameter
from vsms.mapping import ids
from vsms.mapping.snapshots import vssd_path
from vsms.model.job import AffectedElement
from vsms.operations.snapshots import (
    find_snapshot,
    prepare_apply,
    prepare_create,
    prepare_remove,
)
from vsms.operations.transitions import Reservation, Transition
from vsms.operations.undo import run_now, undo_handlers
from vsms.providers.base import CIMTarget, ServiceProvider, method
from vsms.providers.common import Params, Result, param, vm_element
from vsms.providers.vsms_lifecycle import target_guid

_A = Role.ADMINISTRATOR


def snapshot_param(params: Params, name: str = "SnapshotSettingData") -> str:
    """The snapshot GUID a SnapshotSettingData REF names (its VSSD ``Microsoft:<GUID>``)."""
    iid = ids.instance_id_from_ref(param(params, name))
    guid, tail = ids.guid_of(iid), iid.strip()[len("Microsoft:"):].partition("\\")[2]
    if tail:
        raise InvalidParameter(
            f"{name} {iid!r} is not the settings of a snapshot: pass the path of a snapshot's "
            f"{names.VSSD} (InstanceID 'Microsoft:<snapshot GUID>', SettingType 5)")
    return guid


class SnapshotMethods(ServiceProvider):
    """Create, apply and remove snapshots."""

    def _hold(self, guid: str, status: OperationalStatus, what: str) -> Reservation:
        vs = self.ctx.host.get_system(guid)
        return self.ctx.transitions.begin(
            guid, Transition(None, RequestedState.NOT_APPLICABLE, status, what),
            vs.name if vs else "")

    @method("CreateVirtualSystemSnapshot", _A, params=("SourceSystem",), job=True)
    def create_snapshot(self, target: CIMTarget, params: Params) -> Result:
        guid = target_guid(self.ctx, params, "SourceSystem")
        with self._hold(guid, OperationalStatus.CREATING_SNAPSHOT, "a snapshot") as held:
            op = prepare_create(self.ctx.host, self.ctx.roots, guid, self.ctx.store)
            settings = vssd_path(op.snapshot_id)
            label = f"virtual machine '{op.vs.name}' ({guid})"
            if op.memory:
                what = f"a snapshot of {label} with its memory state"
            elif op.live:
                what = (f"a disk-only snapshot of {label}: its memory state is not captured "
                        "(QEMU saves it only for qcow2 disks), so applying the snapshot gives "
                        "a turned-off machine")
            else:
                what = f"a snapshot of {label}"
            rv, out = self.start_job(
                "Create Virtual System Snapshot", f"Creating {what}", op,
                affected=[vm_element(guid, ElementEffects.ELEMENT_INTEGRITY),
                          AffectedElement(names.VSSD, {"InstanceID": ids.vssd_id(op.snapshot_id)},
                                          [int(ElementEffects.CREATE)])],
                reservation=held, cancellable=False)
            return rv, {**out, "SnapshotSettingData": settings}

    def _apply(self, params: Params, *, job: bool) -> Result:
        guid = target_guid(self.ctx, params, "ComputerSystem")
        sid = snapshot_param(params)
        with self._hold(guid, OperationalStatus.APPLYING_SNAPSHOT,
                        "applying a snapshot") as held:
            op = prepare_apply(self.ctx.host, self.ctx.roots, guid, sid)
            if not job:
                try:
                    run_now(op, undo_handlers(self.ctx.host, self.ctx.store))
                finally:
                    held.release()
                return int(ReturnCode.COMPLETED), {}
            return self.start_job(
                "Apply Virtual System Snapshot",
                f"Applying snapshot '{op.snap.name}' to virtual machine '{op.vs.name}' ({guid})",
                op, affected=[vm_element(guid, ElementEffects.ELEMENT_INTEGRITY)],
                reservation=held, cancellable=False)

    @method("ApplyVirtualSystemSnapshot", _A, params=("ComputerSystem", "SnapshotSettingData"))
    def apply_snapshot(self, target: CIMTarget, params: Params) -> Result:
        return self._apply(params, job=False)

    @method("ApplyVirtualSystemSnapshotEx", _A, params=("ComputerSystem", "SnapshotSettingData"),
            job=True)
    def apply_snapshot_ex(self, target: CIMTarget, params: Params) -> Result:
        return self._apply(params, job=True)

    def _remove(self, params: Params, *, tree: bool) -> Result:
        sid = snapshot_param(params)
        owner, snap = find_snapshot(self.ctx.host, sid)
        with self._hold(owner.guid, OperationalStatus.DELETING_SNAPSHOT,
                        "the removal of a snapshot") as held:
            op = prepare_remove(self.ctx.host, self.ctx.roots, sid, tree)
            op.on_merge = lambda: self.ctx.transitions.relabel(owner.guid, Transition(
                None, RequestedState.NOT_APPLICABLE, OperationalStatus.MERGING_DISKS,
                "the merge of a removed snapshot's disks"))
            what = "snapshot tree" if tree else "snapshot"
            return self.start_job(
                "Remove Virtual System Snapshot" + (" Tree" if tree else ""),
                f"Removing the {what} '{snap.name}' of virtual machine '{owner.name}' "
                f"({owner.guid})", op,
                affected=[vm_element(owner.guid, ElementEffects.ELEMENT_INTEGRITY)],
                reservation=held, cancellable=False)

    @method("RemoveVirtualSystemSnapshot", _A, params=("SnapshotSettingData",), job=True)
    def remove_snapshot(self, target: CIMTarget, params: Params) -> Result:
        return self._remove(params, tree=False)

    @method("RemoveVirtualSystemSnapshotTree", _A, params=("SnapshotSettingData",), job=True)
    def remove_snapshot_tree(self, target: CIMTarget, params: Params) -> Result:
        return self._remove(params, tree=True)
