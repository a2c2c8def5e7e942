"""ImportVirtualSystemExMoreGranular, ported from the C# sample of "Importing Virtual
Machines" to Python over pywbem.

Usage: python import_virtual_system_ex_more_granular_cs.py importDirectory
It imports a copy with a new ID named "NewSampleVM", its (first) disk copied to
importDirectory/Temp.vhd, its network adapter connected to the switch
"Switch_For_Import_Export_Sample", which it first tries to create. Exit status 0 as the
original's void Main, 1 when it dies of an unhandled error.

Deviation: when CreateSwitch fails (the switch exists already: 32774) the original would
dereference a null switch and crash; this port prints the original's failure message and
carries on with the switch name, as the VBScript sample does.
"""

from __future__ import annotations

import os

import pywbem
from samples_common import connect, get_service_object, put, require, run_csharp
from samples_import import SAMPLE_SWITCH, create_switch, get_import_setting_data_cs, import_ex_cs


def create_switch_cs(conn: pywbem.WBEMConnection, name: str, friendly_name: str,
                     learnable_address: int) -> str:
    created, _ = create_switch(conn, name, friendly_name, learnable_address)
    if created is not None:
        print(f"{name} was created successfully")
        return str(conn.GetInstance(created)["Name"])
    print(f"Failed to create {name} switch.")
    return name


def get_virtual_system_import_setting_data(conn: pywbem.WBEMConnection,
                                           service: pywbem.CIMInstance,
                                           import_directory: str) -> pywbem.CIMInstance:
    target_vhd_resource_path = os.path.join(import_directory, "Temp.vhd")  # folder must exist
    setting = get_import_setting_data_cs(conn, service, import_directory)
    setting = require(setting, "importSettingData")
    put(setting, {
        "GenerateNewId": True,
        "CreateCopy": True,
        "Name": "NewSampleVM",
        "TargetResourcePaths": [target_vhd_resource_path],
    })
    switch = create_switch_cs(conn, SAMPLE_SWITCH, SAMPLE_SWITCH, 1024)
    put(setting, {"TargetNetworkConnections": [switch]})
    return setting


def import_virtual_system_ex(import_directory: str) -> None:
    conn = connect()
    service = get_service_object(conn, "Msvm_VirtualSystemManagementService")
    setting = get_virtual_system_import_setting_data(conn, service, import_directory)
    import_ex_cs(conn, service, import_directory, setting)


def main(args: list[str]) -> None:
    if len(args) != 1:
        print("Usage: ImportVirtualSystemExMoreGranular importDirectory")
        return
    import_virtual_system_ex(args[0])


if __name__ == "__main__":
    run_csharp(main)
