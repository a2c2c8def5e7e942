"""ExportVirtualSystem, ported from the C# sample of the reference page
(Msvm_VirtualSystemManagementService.ExportVirtualSystem) to Python over pywbem.

Usage: python export_virtual_system_cs.py vmName exportDirectory
Exports the VM with its state (CopyVmState TRUE) into a subdirectory of exportDirectory, which
is created when missing. Exit status 0 as the original's void Main, 1 when it dies of an
unhandled error (such as a VM name that matches no VM).
"""

from __future__ import annotations

import os

from samples_common import (
    connect,
    get_service_object,
    get_target_computer,
    require,
    run_csharp,
    wmi_path,
)
from samples_export import export_cs


def export_virtual_system(vm_name: str, export_directory: str) -> None:
    conn = connect()
    service = get_service_object(conn, "Msvm_VirtualSystemManagementService")
    vm = require(get_target_computer(conn, vm_name), "vm")
    params = [("ComputerSystem", wmi_path(vm.path)), ("CopyVmState", True)]
    if not os.path.isdir(export_directory):
        os.makedirs(export_directory)
    params.append(("ExportDirectory", export_directory))
    export_cs(conn, service, "ExportVirtualSystem", params, vm,
              "Export virtual system failed with error {0}")


def main(args: list[str]) -> None:
    if len(args) != 2:
        print("Usage: ExportVirtualSystem vmName exportDirectory")
        return
    export_virtual_system(args[0], args[1])


if __name__ == "__main__":
    run_csharp(main)
