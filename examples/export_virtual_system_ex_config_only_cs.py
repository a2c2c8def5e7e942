"""ExportVirtualSystemExConfigOnly, ported from the C# sample of "Exporting the Configuration
of a Virtual Machine" to Python over pywbem.

Usage: python export_virtual_system_ex_config_only_cs.py vmName exportDirectory
Like the ExportVirtualSystemEx sample, but CopyVmStorage is FALSE: the virtual hard disks are
not copied, the configuration (and run-time state, snapshots, if any) is. The usage text is the
original's. Exit status 0 as the original's void Main, 1 when it dies of an unhandled error.
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


def get_config_only_virtual_system_export_setting_data_instance(
        conn: pywbem.WBEMConnection) -> str:
    # Copy neither VHDs nor AVHDs, but the snapshot configuration and saved state if present.
    setting = new_instance(conn, "Msvm_VirtualSystemExportSettingData", {
        "CopySnapshotConfiguration": 0, "CopyVmRuntimeInformation": True,
        "CopyVmStorage": False, "CreateVmExportSubdirectory": True})
    return get_text(setting)


def export_virtual_system_ex_config_only(vm_name: str, export_directory: str) -> None:
    conn = connect()
    service = get_service_object(conn, "Msvm_VirtualSystemManagementService")
    vm = require(get_target_computer(conn, vm_name), "vm")
    params: list[tuple[str, object]] = [("ComputerSystem", wmi_path(vm.path))]
    if not os.path.isdir(export_directory):
        os.makedirs(export_directory)
    params.append(("ExportDirectory", export_directory))
    params.append(("ExportSettingData",
                   get_config_only_virtual_system_export_setting_data_instance(conn)))
    export_cs(conn, service, "ExportVirtualSystemEx", params, vm,
              "Export virtual system failed with error:{0}")


def main(args: list[str]) -> None:
    if len(args) != 2:
        print("Usage: ExportVirtualSystemEx vmName exportDirectory")
        return
    export_virtual_system_ex_config_only(args[0], args[1])


if __name__ == "__main__":
    run_csharp(main)
