"""ImportVirtualSystem.vbs, ported from the VBScript sample of the reference page
(Msvm_VirtualSystemManagementService.ImportVirtualSystem) to Python over pywbem.

Usage: python import_virtual_system_vbs.py importDirectoryName generateNewID
(generateNewID: true|false). Appends what it reports to .\\ImportVirtualSystem.log (in the
current directory); exit status 0 when the import succeeded, 1 otherwise.
"""

from __future__ import annotations

import sys

from samples_common import ReturnCode, VbsScript, run_vbscript

SCRIPT = "ImportVirtualSystem.vbs"


def import_virtual_system(vbs: VbsScript, import_directory: str, generate_new_id: str) -> bool:
    service = vbs.management_service()
    rv, out = vbs.conn.InvokeMethod("ImportVirtualSystem", service.path,
                                    Params=[("GenerateNewID", generate_new_id),
                                            ("ImportDirectory", import_directory)])
    if rv == ReturnCode.Started:
        return vbs.wmi_job_completed(out)
    if rv == ReturnCode.Completed:
        return True
    vbs.write_log(f"ImportVirtualSystem failed with ReturnValue {rv}")
    return False


def main() -> None:
    vbs = VbsScript("ImportVirtualSystem.log")
    vbs.management_service()
    args = sys.argv[1:]
    if len(args) != 2:
        vbs.echo("usage: cscript ImportVirtualSystem.vbs importDirectoryName generateNewID")
        vbs.echo("generateNewID:true|false")
        sys.exit(1)
    if import_virtual_system(vbs, args[0], args[1]):
        vbs.write_log("Done")
        sys.exit(0)
    vbs.write_log("importDirectory Failed.")
    sys.exit(1)


if __name__ == "__main__":
    run_vbscript(SCRIPT, main)
