"""ExportVirtualSystemEx, ported from the C# sample of the reference page
(Msvm_VirtualSystemManagementService.ExportVirtualSystemEx) to Python over pywbem.

Usage: python export_virtual_system_ex_cs.py vmName exportDirectory
Builds a new Msvm_VirtualSystemExportSettingData (all snapshots, run-time state and storage,
in a per-VM subdirectory) and exports the VM into exportDirectory, created when missing. Exit
status 0 as the original's void Main, 1 when it dies of an unhandled error.
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


def get_virtual_system_export_setting_data_instance(conn: pywbem.WBEMConnection) -> str:
    setting = new_instance(conn, "Msvm_VirtualSystemExportSettingData", {
        "CopySnapshotConfiguration": 0, "CopyVmRuntimeInformation": True,
        "CopyVmStorage": True, "CreateVmExportSubdirectory": True})
    return get_text(setting)


def export_virtual_system_ex(vm_name: str, export_directory: str) -> None:
    conn = connect()
    service = get_service_object(conn, "Msvm_VirtualSystemManagementService")
    vm = require(get_target_computer(conn, vm_name), "vm")
    params: list[tuple[str, object]] = [("ComputerSystem", wmi_path(vm.path))]
    if not os.path.isdir(export_directory):
        os.makedirs(export_directory)
    params.append(("ExportDirectory", export_directory))
    params.append(("ExportSettingData", get_virtual_system_export_setting_data_instance(conn)))
    export_cs(conn, service, "ExportVirtualSystemEx", params, vm,
              "Export virtual system failed with error:{0}")


def main(args: list[str]) -> None:
    if len(args) != 2:
        print("Usage: ExportVirtualSystemEx vmName exportDirectory")
        return
    export_virtual_system_ex(args[0], args[1])


if __name__ == "__main__":
    run_csharp(main)
