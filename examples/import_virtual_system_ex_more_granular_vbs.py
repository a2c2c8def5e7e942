"""ImportVirtualSystemEx-MoreGranular.vbs, ported from the VBScript sample of "Importing
Virtual Machines" to Python over pywbem.

Usage: python import_virtual_system_ex_more_granular_vbs.py importDirectoryName
It creates the switch "Switch_For_Import_Export_Sample", then imports a copy with a new ID
named "NewSampleVM-WithFixups", its (first) disk copied to importDirectoryName/Temp.vhd and its
network adapter connected to that switch. Appends its report to
.\\ImportVirtualSystemEx-MoreGranular.log; exit status 0 when the import succeeded, 1 otherwise.

Deviation: the original stops with a run-time error when CreateSwitch fails (the switch exists
already, 32774, on a second run); this port logs the failure and goes on.
"""

from __future__ import annotations

import os
import sys

from samples_common import ReturnCode, VbsScript, get_text, put, run_vbscript
from samples_import import (
    SAMPLE_SWITCH,
    create_switch,
    get_import_setting_data_vbs,
    object_required,
)

SCRIPT = "ImportVirtualSystemEx-MoreGranular.vbs"


def import_virtual_system_ex(vbs: VbsScript, import_directory: str) -> bool:
    # the folders in newTargetResourcePaths must exist
    new_target_resource_paths = [os.path.join(import_directory, "Temp.vhd")]
    new_target_network_connections = [SAMPLE_SWITCH]
    _, why = create_switch(vbs.conn, SAMPLE_SWITCH, SAMPLE_SWITCH, 1024)
    if why:
        vbs.write_log(f"CreateSwitch failed with error code {why}")
    service = vbs.management_service()
    setting = get_import_setting_data_vbs(
        vbs, service, import_directory, "GetVirtualSystemImportSettingData failed with "
                                        "ReturnValue {0}")
    setting = object_required(setting, "importSettingData")
    put(setting, {
        "GenerateNewId": True,
        "CreateCopy": True,
        "Name": "NewSampleVM-WithFixups",
        "TargetResourcePaths": new_target_resource_paths,
        "TargetNetworkConnections": new_target_network_connections,
    })
    rv, out = vbs.conn.InvokeMethod("ImportVirtualSystemEx", service.path,
                                    Params=[("ImportDirectory", import_directory),
                                            ("ImportSettingData", get_text(setting))])
    if rv == ReturnCode.Started:
        return vbs.wmi_job_completed(out)
    if rv == ReturnCode.Completed:
        return True
    vbs.write_log(f"ImportVirtualSystemEx failed with ReturnValue {rv}")
    return False


def main() -> None:
    vbs = VbsScript("ImportVirtualSystemEx-MoreGranular.log")
    vbs.management_service()
    args = sys.argv[1:]
    if len(args) != 1:
        vbs.echo("usage: cscript ImportVirtualSystemEx-MoreGranular.vbs importDirectoryName")
        sys.exit(1)
    if import_virtual_system_ex(vbs, args[0]):
        vbs.write_log("Done")
        sys.exit(0)
    vbs.write_log("ImportVirtualSystemEx Failed.")
    sys.exit(1)


if __name__ == "__main__":
    run_vbscript(SCRIPT, main)
