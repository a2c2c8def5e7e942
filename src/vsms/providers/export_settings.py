"""Msvm_VirtualSystemExportSettingData (one per VM) and Msvm_SystemExportSettingData.

A client gets a VM's export setting data with ``ASSOCIATORS OF {vm} WHERE ResultClass =
Msvm_VirtualSystemExportSettingData``, edits it, and passes it to ExportVirtualSystemEx.
"""

from __future__ import annotations

from collections.abc import Iterable

import pywbem

from vsms.cim import names
from vsms.mapping.exportimport import export_setting_data
from vsms.providers.base import ServiceProvider, association
from vsms.providers.common import same_path, vm_path

_SUFFIX = "\\ExportSettingData"


class ExportSettingsProvider(ServiceProvider):
    classnames = (names.EXPORT_SD, names.SYSTEM_EXPORT_SD)

    def _guids(self) -> list[str]:
        return [vs.guid for vs in self.ctx.host.shared_systems()]

    def _assoc(self, guid: str) -> pywbem.CIMInstance:
        return association(names.SYSTEM_EXPORT_SD, {
            "ManagedElement": vm_path(guid), "SettingData": export_setting_data(guid).path}, {
            "IsDefault": pywbem.Uint16(1), "IsCurrent": pywbem.Uint16(1),
            "IsNext": pywbem.Uint16(1)}, ref_classes={"ManagedElement": "", "SettingData": ""})

    def enumerate(self, classname: str) -> Iterable[pywbem.CIMInstance]:
        if classname.lower() == names.EXPORT_SD.lower():
            return [export_setting_data(g) for g in self._guids()]
        return [self._assoc(g) for g in self._guids()]

    def get(self, path: pywbem.CIMInstanceName) -> pywbem.CIMInstance | None:
        if path.classname.lower() == names.EXPORT_SD.lower():
            guid = _esd_guid(str(path.keybindings.get("InstanceID", "")))
            if guid and self.ctx.host.get_system(guid) is not None:
                return export_setting_data(guid)
            return None
        vm = path.keybindings.get("ManagedElement")
        if not isinstance(vm, pywbem.CIMInstanceName):
            return None
        return next((i for i in self.references_to(path.classname, vm)
                     if same_path(i.path, path)), None)

    def references_to(self, classname: str, target: pywbem.CIMInstanceName
                      ) -> Iterable[pywbem.CIMInstance]:
        """The Msvm_SystemExportSettingData of the one VM ``target`` names (the VM itself or
        its export setting data); none for anything else."""
        if classname.lower() != names.SYSTEM_EXPORT_SD.lower():
            return []
        keys = {k.lower(): str(v) for k, v in target.keybindings.items()}
        if target.classname.lower() == names.COMPUTER_SYSTEM.lower():
            guid = keys.get("name", "")
        else:
            guid = _esd_guid(keys.get("instanceid", ""))
        vs = self.ctx.host.get_system(guid) if guid else None
        return [self._assoc(vs.guid)] if vs is not None else []


def _esd_guid(iid: str) -> str:
    """The VM GUID in an export setting data InstanceID ("Microsoft:<GUID>\\ExportSettingData"),
    or "" when it is not one."""
    ok = iid.startswith("Microsoft:") and iid.endswith(_SUFFIX)
    return iid[len("Microsoft:"):-len(_SUFFIX)] if ok else ""
