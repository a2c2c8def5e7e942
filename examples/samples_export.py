"""What the export samples share: the export call, the VBScript Main, CreateFolder.

Each function prints (C#) or logs (VBScript) the messages of the original samples.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import pywbem
from samples_common import ReturnCode, VbsError, VbsScript, job_completed


def export_cs(conn: pywbem.WBEMConnection, service: pywbem.CIMInstance, method: str,
              params: list[tuple[str, Any]], vm: pywbem.CIMInstance, failed: str) -> None:
    """The C# export samples' call and messages; ``failed`` is the message for an error
    ReturnValue (with {0} for the value)."""
    rv, out = conn.InvokeMethod(method, service.path, Params=params)
    if rv == ReturnCode.Started:
        if job_completed(conn, out):
            print(f"VM '{vm['ElementName']}' were exported successfully.")
        else:
            print("Failed to export VM")
    elif rv == ReturnCode.Completed:
        print(f"VM '{vm['ElementName']}' were exported successfully.")
    else:
        print(failed.replace("{0}", str(rv)))


def export_vbs(vbs: VbsScript, service: pywbem.CIMInstance, method: str,
               params: list[tuple[str, Any]], failed: str) -> bool:
    """The VBScript export samples' call: True when the export succeeded."""
    rv, out = vbs.conn.InvokeMethod(method, service.path, Params=params)
    if rv == ReturnCode.Started:
        return vbs.wmi_job_completed(out)
    if rv == ReturnCode.Completed:
        return True
    vbs.write_log(failed.replace("{0}", str(rv)))
    return False


def vbs_main(script: str, log_name: str, usage: str, failed: str,
             body: Callable[[VbsScript, pywbem.CIMInstance, str], bool]) -> Callable[[], None]:
    """Main of the VBScript export samples: arguments vmName exportDirectoryName."""
    def main() -> None:
        vbs = VbsScript(log_name)
        vbs.management_service()
        args = sys.argv[1:]
        if len(args) != 2:
            vbs.echo(usage)
            sys.exit(1)
        vm = vbs.get_computer_system(args[0])
        if body(vbs, vm, args[1]):
            vbs.write_log("Done")
            sys.exit(0)
        vbs.write_log(failed)
        sys.exit(1)
    return main


def create_folder(path: str) -> None:
    """``fileSystem.CreateFolder`` when the folder does not exist (its parent must)."""
    if not os.path.isdir(path):
        try:
            os.mkdir(path)
        except FileNotFoundError:
            raise VbsError(0x800A004C, f"Path not found: {path}") from None
