"""The settings of every VM and their associations.

``SettingDataProvider`` serves Msvm_VirtualSystemSettingData, Msvm_VirtualSystemGlobalSettingData,
Msvm_ResourceAllocationSettingData and its memory, processor and Ethernet port subclasses, each
instance as ``mapping.system.settings_instances`` builds it. ``SettingsAssociationProvider``
serves Msvm_SettingsDefineState (VM ↔ VSSD), Msvm_VirtualSystemSettingDataComponent (VSSD ↔
VSGSD and each RASD) and Msvm_ElementSettingData (VM ↔ VSGSD, and each logical device ↔ its
RASD). The RASD classes also hold the Default / Minimum / Maximum / Increment settings of the
resource pools (``mapping.pools``). Snapshots' settings (SettingType 5, ``mapping.snapshots``)
are served and associated alongside: their VSSD components, and Msvm_ElementSettingData from the
VM to each snapshot's VSSD (``providers.snapshots``).
"""

from __future__ import annotations

from collections.abc import Iterable

import pywbem

from vsms.cim import names
from vsms.errors import InvalidParameter
from vsms.mapping import components, ids, logical_devices, pools
from vsms.mapping.snapshots import all_snapshot_instances, snapshot_instances, snapshot_of
from vsms.mapping.system import settings_instances
from vsms.model.vm import VirtualSystem
from vsms.providers.base import ServiceProvider, association
from vsms.providers.common import key, same_path, vm_path
from vsms.providers.snapshots import system_of_setting, tree_associations

SETTING_CLASSES = (names.VSSD, names.VSGSD, names.RASD, names.MEMORY_SD, names.PROCESSOR_SD,
                   names.SYNTHETIC_NIC_SD, names.EMULATED_NIC_SD)
_RASD_CLASSES = {c.lower() for c in SETTING_CLASSES[2:]}


class SettingDataProvider(ServiceProvider):
    classnames = SETTING_CLASSES

    def enumerate(self, classname: str) -> Iterable[pywbem.CIMInstance]:
        want = classname.lower()
        found = [inst for vs in self.ctx.host.shared_systems()
                 for inst in (*settings_instances(vs), *all_snapshot_instances(vs))
                 if inst.classname.lower() == want]
        if want in _RASD_CLASSES:
            found += [i for i in pools.setting_instances(self.ctx.host.limits())
                      if i.classname.lower() == want]
        return found

    def get(self, path: pywbem.CIMInstanceName) -> pywbem.CIMInstance | None:
        try:
            iid = key(path, "InstanceID")
            defining = pools.parse_setting_id(iid)
            if defining is not None:
                inst = pools.setting_instance(*defining, self.ctx.host.limits())
                asked = path.classname.lower()
                return inst if asked in (inst.classname.lower(), names.RASD.lower()) else None
            guid = ids.guid_of(iid)
        except InvalidParameter:
            return None
        vs = self.ctx.host.get_system(guid)
        candidates = settings_instances(vs) if vs is not None else self._snapshot(path)
        asked = path.classname.lower()
        for inst in candidates:
            if str(inst.path.keybindings["InstanceID"]).lower() != iid.lower():
                continue
            have = inst.classname.lower()
            if have == asked or (asked == names.RASD.lower() and have in _RASD_CLASSES):
                return inst
        return None

    def _snapshot(self, path: pywbem.CIMInstanceName) -> list[pywbem.CIMInstance]:
        """The settings of the snapshot ``path`` names, [] when it is none."""
        owner = system_of_setting(self.ctx.host, path)
        snap = snapshot_of(owner, ids.guid_of(key(path, "InstanceID"))) if owner else None
        return snapshot_instances(owner, snap) if owner and snap else []


def associations(vs: VirtualSystem, classname: str) -> list[pywbem.CIMInstance]:
    """The instances of association ``classname`` that concern ``vs``."""
    settings = settings_instances(vs)
    vssd, vsgsd, parts = settings[0].path, settings[1].path, [i.path for i in settings[1:]]
    parts += components.setting_paths(vs)  # the integration components' settings
    vm = vm_path(vs.guid)
    want = classname.lower()
    if want == names.SETTINGS_DEFINE_STATE.lower():
        return [association(names.SETTINGS_DEFINE_STATE, {"ManagedElement": vm,
                                                           "SettingData": vssd})]
    if want == names.VSSD_COMPONENT.lower():
        return [*(association(names.VSSD_COMPONENT, {"GroupComponent": vssd,
                                                     "PartComponent": part}) for part in parts),
                *tree_associations(vs, classname)]
    if want == names.ELEMENT_SETTING_DATA.lower():
        flags = {"IsDefault": pywbem.Uint16(0), "IsCurrent": pywbem.Uint16(1),
                 "IsNext": pywbem.Uint16(0), "IsMaximum": pywbem.Uint16(0),
                 "IsMinimum": pywbem.Uint16(0)}
        return [association(names.ELEMENT_SETTING_DATA,
                            {"ManagedElement": vm, "SettingData": vsgsd}, flags),
                *(association(link.classname, link.refs, link.values)  # each device ↔ its RASD
                  for link in logical_devices.setting_links(vs)),
                *tree_associations(vs, classname)]
    return []


class SettingsAssociationProvider(ServiceProvider):
    classnames = (names.SETTINGS_DEFINE_STATE, names.VSSD_COMPONENT, names.ELEMENT_SETTING_DATA)

    def enumerate(self, classname: str) -> Iterable[pywbem.CIMInstance]:
        return [a for vs in self.ctx.host.shared_systems() for a in associations(vs, classname)]

    def references_to(self, classname: str, target: pywbem.CIMInstanceName
                      ) -> Iterable[pywbem.CIMInstance]:
        """The instances of ``classname`` that may refer to ``target``: those of the one VM the
        target belongs to (none when it is neither a VM nor one of its settings)."""
        guid = self._guid_of(target)
        vs = self.ctx.host.get_system(guid) if guid else None
        if vs is None and guid:  # the settings of a snapshot
            vs = system_of_setting(self.ctx.host, target)
        return associations(vs, classname) if vs is not None else []

    def get(self, path: pywbem.CIMInstanceName) -> pywbem.CIMInstance | None:
        refs = [r for r in path.keybindings.values() if isinstance(r, pywbem.CIMInstanceName)]
        candidates = self.references_to(path.classname, refs[0]) if refs else []
        return next((i for i in candidates if same_path(i.path, path)), None)

    @staticmethod
    def _guid_of(ref: pywbem.CIMInstanceName) -> str | None:
        device_of = logical_devices.system_of(ref)
        if device_of is not None:
            return device_of
        try:
            if ref.classname.lower() == names.COMPUTER_SYSTEM.lower():
                return key(ref, "Name")
            return ids.guid_of(key(ref, "InstanceID"))
        except InvalidParameter:
            return None
