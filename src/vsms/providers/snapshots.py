"""The snapshot tree's associations: Msvm_PreviousSettingData (VM → the snapshot its current
state grew from), Msvm_ParentChildSettingData (parent snapshot → child) and
Msvm_LastAppliedSettingData (VM → the snapshot applied last). The snapshots' own settings are
served with the current ones (``providers.settings_data``), built by ``mapping.snapshots``.
"""

from __future__ import annotations

from collections.abc import Iterable

import pywbem

from vsms.cim import names
from vsms.errors import InvalidParameter
from vsms.mapping import ids
from vsms.mapping.snapshots import (
    ASSOCIATIONS,
    LAST_APPLIED_SD,
    PARENT_CHILD_SD,
    PREVIOUS_SD,
    snapshot_instances,
    vssd_path,
)
from vsms.model.vm import VirtualSystem
from vsms.providers.base import ServiceProvider, association
from vsms.providers.common import key, same_path, vm_path
from vsms.virt.host import VirtHost


def _element(classname: str, vm: pywbem.CIMInstanceName, snapshot_id: str,
             current: int = 0) -> pywbem.CIMInstance:
    zero = pywbem.Uint16(0)
    return association(classname, {"ManagedElement": vm, "SettingData": vssd_path(snapshot_id)},
                       {"IsDefault": zero, "IsCurrent": pywbem.Uint16(current), "IsNext": zero,
                        "IsMaximum": zero, "IsMinimum": zero})


def tree_associations(vs: VirtualSystem, classname: str) -> list[pywbem.CIMInstance]:
    """The instances of ``classname`` that concern ``vs``'s snapshots: one of ASSOCIATIONS, or
    Msvm_VirtualSystemSettingDataComponent (each snapshot's VSSD → its RASDs) and
    Msvm_ElementSettingData (the VM → each snapshot's VSSD, IsCurrent 2)."""
    vm = vm_path(vs.guid)
    want = classname.lower()
    known = {s.id for s in vs.snapshots}
    if want == PREVIOUS_SD.lower():
        return [_element(PREVIOUS_SD, vm, vs.previous_snapshot)] \
            if vs.previous_snapshot in known else []
    if want == LAST_APPLIED_SD.lower():
        return [_element(LAST_APPLIED_SD, vm, vs.last_applied)] \
            if vs.last_applied in known else []
    if want == PARENT_CHILD_SD.lower():
        return [association(PARENT_CHILD_SD, {"Antecedent": vssd_path(s.parent),
                                              "Dependent": vssd_path(s.id)})
                for s in vs.snapshots if s.parent in known]
    if want == names.VSSD_COMPONENT.lower():
        out = []
        for snap in vs.snapshots:
            insts = snapshot_instances(vs, snap)
            out += [association(names.VSSD_COMPONENT, {"GroupComponent": insts[0].path,
                                                        "PartComponent": part.path})
                    for part in insts[1:]]
        return out
    if want == names.ELEMENT_SETTING_DATA.lower():
        return [_element(names.ELEMENT_SETTING_DATA, vm, s.id, current=2)
                for s in vs.snapshots]
    return []


def system_of_setting(host: VirtHost, ref: pywbem.CIMInstanceName) -> VirtualSystem | None:
    """The VM a reference belongs to: the VM itself, one of its current settings (one libvirt
    look-up), or one of its snapshots' settings (the host's snapshot index)."""
    try:
        if ref.classname.lower() == names.COMPUTER_SYSTEM.lower():
            return host.get_system(key(ref, "Name"))
        guid = ids.guid_of(key(ref, "InstanceID"))
    except InvalidParameter:
        return None
    vs = host.get_system(guid)
    if vs is not None:
        return vs
    owner = host.snapshot_owner(guid)
    return host.get_system(owner) if owner is not None else None


class SnapshotTreeProvider(ServiceProvider):
    classnames = ASSOCIATIONS

    def snapshot_owner(self, snapshot_id: str) -> str | None:
        """The GUID of the VM that has the snapshot ``snapshot_id`` (the scope filter asks)."""
        return self.ctx.host.snapshot_owner(snapshot_id)

    def enumerate(self, classname: str) -> Iterable[pywbem.CIMInstance]:
        return [a for vs in self.ctx.host.shared_systems() for a in
                tree_associations(vs, classname)]

    def references_to(self, classname: str, target: pywbem.CIMInstanceName
                      ) -> Iterable[pywbem.CIMInstance]:
        vs = system_of_setting(self.ctx.host, target)
        return tree_associations(vs, classname) if vs is not None else []

    def get(self, path: pywbem.CIMInstanceName) -> pywbem.CIMInstance | None:
        refs = [r for r in path.keybindings.values() if isinstance(r, pywbem.CIMInstanceName)]
        candidates = self.references_to(path.classname, refs[0]) if refs else []
        return next((i for i in candidates if same_path(i.path, path)), None)
