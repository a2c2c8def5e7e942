"""ImportVirtualSystemEx, ported from the C# sample of the reference page
(Msvm_VirtualSystemManagementService.ImportVirtualSystemEx) to Python over pywbem.

Usage: python import_virtual_system_ex_cs.py importDirectory
It (re)creates importDirectory/NewCopy, gets the import setting data of importDirectory, asks
for a copy with a new ID named "NewSampleVM" whose files go to NewCopy, and imports. Exit
status 0 as the original's void Main, 1 when it dies of an unhandled error.
"""

from __future__ import annotations

import os
import shutil

import pywbem
from samples_common import connect, get_service_object, put, require, run_csharp
from samples_import import get_import_setting_data_cs, import_ex_cs


def get_virtual_system_import_setting_data(conn: pywbem.WBEMConnection,
                                           service: pywbem.CIMInstance, import_directory: str,
                                           root_directory_to_copy: str) -> pywbem.CIMInstance:
    setting = get_import_setting_data_cs(conn, service, import_directory)
    setting = require(setting, "importSettingData")
    put(setting, {
        "GenerateNewId": True,
        "CreateCopy": True,
        "Name": "NewSampleVM",
        "TargetVmDataRoot": root_directory_to_copy,
        "TargetSnapshotDataRoot": root_directory_to_copy,
        "TargetVhdDataRoot": root_directory_to_copy,
    })
    return setting


def import_virtual_system_ex(import_directory: str) -> None:
    import_copy_directory = os.path.join(import_directory, "NewCopy")  # must exist
    if os.path.isdir(import_copy_directory):
        shutil.rmtree(import_copy_directory)
    os.makedirs(import_copy_directory)
    conn = connect()
    service = get_service_object(conn, "Msvm_VirtualSystemManagementService")
    setting = get_virtual_system_import_setting_data(conn, service, import_directory,
                                                     import_copy_directory)
    import_ex_cs(conn, service, import_directory, setting)


def main(args: list[str]) -> None:
    if len(args) != 1:
        print("Usage: ImportVirtualSystemEx importDirectory")
        return
    import_virtual_system_ex(args[0])


if __name__ == "__main__":
    run_csharp(main)
