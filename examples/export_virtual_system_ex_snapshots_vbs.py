"""ExportVirtualSystemExSnapshots.vbs, ported from the VBScript sample of "Exporting a Snapshot
of a Virtual Machine" to Python over pywbem.

Usage: python export_virtual_system_ex_snapshots_vbs.py vmName exportDirectoryName
Creates exportDirectoryName when missing, looks for the VM's last snapshot (a
Msvm_VirtualSystemSettingData with SettingType 5) and exports it as a VM. vsms has no
snapshots yet, so it logs that none was found and fails. Appends its report to
.\\ExportVirtualSystemEx-ExportSnapshot.log; exit status 0 when the export succeeded, 1
otherwise.
"""

from __future__ import annotations

import pywbem
from samples_common import VbsScript, get_text, put, run_vbscript, wmi_path
from samples_export import create_folder, export_vbs, vbs_main

SCRIPT = "ExportVirtualSystemExSnapshots.vbs"
SNAPSHOT = 5  # SettingType 5: the settings are a snapshot


def get_last_virtual_system_snapshot(vbs: VbsScript, vm_path: str) -> pywbem.CIMInstance | None:
    snapshot = None
    for vssd in vbs.query(f"ASSOCIATORS OF {{{vm_path}}} WHERE resultClass = "
                          "Msvm_VirtualSystemsettingData"):
        if vssd["SettingType"] == SNAPSHOT:
            snapshot = vssd
    return snapshot


def export_virtual_system_ex_snapshots(vbs: VbsScript, computer_system: pywbem.CIMInstance,
                                       export_directory: str) -> bool:
    create_folder(export_directory)
    service = vbs.management_service()
    vm_path = wmi_path(computer_system.path)
    setting = vbs.item_index0(f"ASSOCIATORS OF {{{vm_path}}} WHERE resultClass = "
                              "Msvm_VirtualSystemExportSettingData")
    put(setting, {
        "CopyVmStorage": True,
        "CopyVmRuntimeInformation": True,
        "CreateVmExportSubdirectory": True,
        "CopySnapshotConfiguration": 2,
    })
    snapshot = get_last_virtual_system_snapshot(vbs, vm_path)
    if snapshot is None:
        vbs.write_log("No snapshots were found on the VM when trying to export snapshot as VM.")
        return False
    put(setting, {"SnapshotVirtualSystem": wmi_path(snapshot.path)})
    return export_vbs(vbs, service, "ExportVirtualSystemEx",
                      [("ComputerSystem", vm_path), ("ExportSettingData", get_text(setting)),
                       ("ExportDirectory", export_directory)],
                      "ExportVirtualSystemExSnapshots failed with ReturnValue {0}")


if __name__ == "__main__":
    run_vbscript(SCRIPT, vbs_main(
        SCRIPT, "ExportVirtualSystemEx-ExportSnapshot.log",
        "usage: cscript ExportVirtualSystemExSnapshots.vbs vmName exportDirectoryName",
        "ExportVirtualSystemExSnapshots Failed.", export_virtual_system_ex_snapshots))
