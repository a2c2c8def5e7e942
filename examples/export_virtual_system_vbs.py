"""ExportVirtualSystem.vbs, ported from the VBScript sample of the reference page
(Msvm_VirtualSystemManagementService.ExportVirtualSystem) to Python over pywbem.

Usage: python export_virtual_system_vbs.py vmName exportDirectoryName
Exports the VM with its state (CopyVmState TRUE) into a subdirectory of exportDirectoryName,
created when missing. Appends its report to .\\ADDSCSIContoller.log: that is the log file the
original names (a slip carried over from another sample, kept so both write the same file).
Exit status 0 when the export succeeded, 1 otherwise.

Deviation: on an error ReturnValue the original logs an undeclared variable (a run-time error
under Option Explicit); this port logs the ReturnValue.
"""

from __future__ import annotations

import pywbem
from samples_common import VbsScript, run_vbscript, wmi_path
from samples_export import create_folder, export_vbs, vbs_main

SCRIPT = "ExportVirtualSystem.vbs"


def export_virtual_system(vbs: VbsScript, computer_system: pywbem.CIMInstance,
                          export_directory: str) -> bool:
    create_folder(export_directory)
    return export_vbs(vbs, vbs.management_service(), "ExportVirtualSystem",
                      [("ComputerSystem", wmi_path(computer_system.path)),
                       ("CopyVmState", True), ("ExportDirectory", export_directory)],
                      "ExportVirtualSystem failed with ReturnValue {0}")


if __name__ == "__main__":
    run_vbscript(SCRIPT, vbs_main(
        SCRIPT, "ADDSCSIContoller.log",
        "usage: cscript ExportVirtualSystem.vbs vmName exportDirectoryName",
        "ExportVirtualSystem Failed.", export_virtual_system))
