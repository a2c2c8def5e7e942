"""The configuration-only ExportVirtualSystemEx.vbs, ported from the VBScript sample of
"Exporting the Configuration of a Virtual Machine" to Python over pywbem.

Usage: python export_virtual_system_ex_config_only_vbs.py vmName exportDirectoryName
Like export_virtual_system_ex_vbs.py with CopyVmStorage FALSE (no virtual hard disks). The
original calls itself ExportVirtualSystemEx.vbs and logs to .\\ExportVirtualSystemExLog.log;
so does this port. Exit status 0 when the export succeeded, 1 otherwise.
"""

from __future__ import annotations

import pywbem
from export_virtual_system_ex_vbs import export_virtual_system_ex
from samples_common import VbsScript, run_vbscript
from samples_export import vbs_main

SCRIPT = "ExportVirtualSystemEx.vbs"


def export_config_only(vbs: VbsScript, computer_system: pywbem.CIMInstance,
                       export_directory: str) -> bool:
    # Do not copy the VHDs and AVHDs, but the saved state and snapshot configurations if present.
    return export_virtual_system_ex(vbs, computer_system, export_directory, copy_storage=False)


if __name__ == "__main__":
    run_vbscript(SCRIPT, vbs_main(
        SCRIPT, "ExportVirtualSystemExLog.log",
        "usage: cscript ExportVirtualSystemEx.vbs vmName exportDirectoryName",
        "ExportVirtualSystemEx Failed.", export_config_only))
