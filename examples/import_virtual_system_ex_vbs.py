"""ImportVirtualSystemEx.vbs, ported from the VBScript sample of the reference page
(Msvm_VirtualSystemManagementService.ImportVirtualSystemEx) to Python over pywbem.

Usage: python import_virtual_system_ex_vbs.py importDirectoryName
It (re)creates importDirectoryName/NewCopy and imports a copy with a new ID named
"NewSampleVM" whose files go there. Appends its report to .\\ImportVirtualSystemEx.log; exit
status 0 when the import succeeded, 1 otherwise.
"""

from __future__ import annotations

import os
import shutil
import sys

from samples_common import ReturnCode, VbsScript, get_text, put, run_vbscript
from samples_import import get_import_setting_data_vbs, object_required

SCRIPT = "ImportVirtualSystemEx.vbs"


def import_virtual_system_ex(vbs: VbsScript, import_directory: str) -> bool:
    new_data_root = os.path.join(import_directory, "NewCopy")
    # the folder in newDataRoot must exist
    if os.path.isdir(new_data_root):
        shutil.rmtree(new_data_root)
    os.mkdir(new_data_root)
    service = vbs.management_service()
    setting = get_import_setting_data_vbs(vbs, service, import_directory,
                                          "ImportVirtualSystem failed with ReturnValue {0}")
    setting = object_required(setting, "importSettingData")
    put(setting, {
        "GenerateNewId": True,
        "CreateCopy": True,
        "Name": "NewSampleVM",
        "TargetVmDataRoot": new_data_root,
        "TargetSnapshotDataRoot": new_data_root,
        "TargetVhdDataRoot": new_data_root,
    })
    rv, out = vbs.conn.InvokeMethod("ImportVirtualSystemEx", service.path,
                                    Params=[("ImportDirectory", import_directory),
                                            ("ImportSettingData", get_text(setting))])
    if rv == ReturnCode.Started:
        return vbs.wmi_job_completed(out)
    if rv == ReturnCode.Completed:
        return True
    vbs.write_log(f"ImportVirtualSystem failed with ReturnValue {rv}")
    return False


def main() -> None:
    vbs = VbsScript("ImportVirtualSystemEx.log")
    vbs.management_service()
    args = sys.argv[1:]
    if len(args) != 1:
        vbs.echo("usage: cscript ImportVirtualSystemEx.vbs importDirectoryName")
        sys.exit(1)
    if import_virtual_system_ex(vbs, args[0]):
        vbs.write_log("Done")
        sys.exit(0)
    vbs.write_log("importDirectory Failed.")
    sys.exit(1)


if __name__ == "__main__":
    run_vbscript(SCRIPT, main)
