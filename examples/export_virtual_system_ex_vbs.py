"""ExportVirtualSystemEx.vbs, ported from the VBScript sample of the reference page
(Msvm_VirtualSystemManagementService.ExportVirtualSystemEx) to Python over pywbem.

Usage: python export_virtual_system_ex_vbs.py vmName exportDirectoryName
Takes the VM's export setting data through ``ASSOCIATORS OF {vm} WHERE resultClass =
Msvm_VirtualSystemExportSettingData``, asks for storage, run-time state, all snapshots and a
per-VM subdirectory, and exports into exportDirectoryName (created when missing). Appends its
report to .\\ExportVirtualSystemExLog.log; exit status 0 when the export succeeded, 1 otherwise.
"""

from __future__ import annotations

import pywbem
from samples_common import VbsScript, get_text, put, run_vbscript, wmi_path
from samples_export import create_folder, export_vbs, vbs_main

SCRIPT = "ExportVirtualSystemEx.vbs"


def export_virtual_system_ex(vbs: VbsScript, computer_system: pywbem.CIMInstance,
                             export_directory: str, *, copy_storage: bool = True) -> bool:
    create_folder(export_directory)
    service = vbs.management_service()
    vm_path = wmi_path(computer_system.path)
    setting = vbs.item_index0(f"ASSOCIATORS OF {{{vm_path}}} WHERE resultClass = "
                              "Msvm_VirtualSystemExportSettingData")
    put(setting, {
        "CopyVmStorage": copy_storage,
        "CopyVmRuntimeInformation": True,
        "CreateVmExportSubdirectory": True,
        "CopySnapshotConfiguration": 0,
    })
    return export_vbs(vbs, service, "ExportVirtualSystemEx",
                      [("ComputerSystem", vm_path), ("ExportSettingData", get_text(setting)),
                       ("ExportDirectory", export_directory)],
                      "ExportVirtualSystemEx failed with ReturnValue {0}")


if __name__ == "__main__":
    run_vbscript(SCRIPT, vbs_main(
        SCRIPT, "ExportVirtualSystemExLog.log",
        "usage: cscript ExportVirtualSystemEx.vbs vmName exportDirectoryName",
        "ExportVirtualSystemEx Failed.", export_virtual_system_ex))
