"""ExportVirtualSystemExSnapshots, ported from the C# sample of "Exporting a Snapshot of a
Virtual Machine" to Python over pywbem.

Usage: python export_virtual_system_ex_snapshots_cs.py vmName exportDirectory
Finds the VM's last snapshot (its Msvm_VirtualSystemSettingData through
Msvm_PreviousSettingData) and exports that one snapshot as a VM (CopySnapshotConfiguration 2).
vsms has no snapshots yet: its VMs have none (the association class is not served, which this
port reads as "no snapshots"), so the sample says so and stops. Exit status 0 as the
original's void Main, 1 when it dies of an unhandled error.
"""

from __future__ import annotations

import os

import pywbem
from samples_common import (
    connect,
    get_service_object,
    get_target_computer,
    get_text,
    new_instance,
    require,
    run_csharp,
    wmi_path,
)
from samples_export import export_cs

_NO_SUCH_CLASS = (pywbem.CIM_ERR_INVALID_CLASS, pywbem.CIM_ERR_INVALID_PARAMETER,
                  pywbem.CIM_ERR_NOT_FOUND)


def get_last_virtual_system_snapshot(conn: pywbem.WBEMConnection,
                                     vm: pywbem.CIMInstance) -> pywbem.CIMInstance | None:
    try:
        settings = conn.Associators(vm.path, AssocClass="Msvm_PreviousSettingData",
                                    ResultClass="Msvm_VirtualSystemSettingData",
                                    Role="ManagedElement", ResultRole="SettingData")
    except pywbem.CIMError as err:
        if err.status_code not in _NO_SUCH_CLASS:
            raise
        settings = []
    last = None
    for setting in settings:
        print(wmi_path(setting.path))
        print(setting["ElementName"])
        last = setting
    return last


def get_virtual_system_export_setting_data_instance(
        conn: pywbem.WBEMConnection, snapshot: pywbem.CIMInstance) -> str:
    setting = new_instance(conn, "Msvm_VirtualSystemExportSettingData", {
        "CopySnapshotConfiguration": 2, "CreateVmExportSubdirectory": True,
        "SnapshotVirtualSystem": wmi_path(snapshot.path)})
    return get_text(setting)


def export_virtual_system_ex_snapshots(vm_name: str, export_directory: str) -> None:
    conn = connect()
    service = get_service_object(conn, "Msvm_VirtualSystemManagementService")
    vm = require(get_target_computer(conn, vm_name), "vm")
    snapshot = get_last_virtual_system_snapshot(conn, vm)
    if snapshot is None:
        print("There are not snapshots in the VM to be exported...")
        return
    params: list[tuple[str, object]] = [("ComputerSystem", wmi_path(vm.path))]
    if not os.path.isdir(export_directory):
        os.makedirs(export_directory)
    params.append(("ExportDirectory", export_directory))
    params.append(("ExportSettingData",
                   get_virtual_system_export_setting_data_instance(conn, snapshot)))
    export_cs(conn, service, "ExportVirtualSystemEx", params, vm,
              "Export virtual system failed with error:{0}")


def main(args: list[str]) -> None:
    if len(args) != 2:
        print("Usage: ExportVirtualSystemExSnapshots vmName exportDirectory")
        return
    export_virtual_system_ex_snapshots(args[0], args[1])


if __name__ == "__main__":
    run_csharp(main)
