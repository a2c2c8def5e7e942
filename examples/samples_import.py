"""What the import samples share: getting and passing the import setting data, CreateSwitch.

Each function prints (C#) or logs (VBScript) the messages of the original samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pywbem
from samples_common import (
    ReturnCode,
    VbsError,
    VbsScript,
    get_text,
    job_completed,
    out_param,
)


def import_setting_data(out: Mapping[str, Any]) -> pywbem.CIMInstance | None:
    """The ImportSettingData out parameter as an instance (the service may send it as text)."""
    raw = out_param(out, "ImportSettingData")
    if isinstance(raw, str):  # a service that sends it as a plain string
        from vsms.cim.embedded import parse_instance
        return parse_instance(raw)
    return raw if isinstance(raw, pywbem.CIMInstance) else None


def get_import_setting_data_cs(conn: pywbem.WBEMConnection, service: pywbem.CIMInstance,
                               import_directory: str) -> pywbem.CIMInstance | None:
    """The C# samples' GetVirtualSystemImportSettingData call and its messages."""
    rv, out = conn.InvokeMethod("GetVirtualSystemImportSettingData", service.path,
                                Params=[("ImportDirectory", import_directory)])
    setting = None
    if rv == ReturnCode.Started:
        if job_completed(conn, out):
            setting = import_setting_data(out)
            print(f"Import Setting Data for the ImportDirectory '{import_directory}' was "
                  "retrieved successfully.")
        else:
            print("Failed to get the Import Setting Data")
    elif rv == ReturnCode.Completed:
        setting = import_setting_data(out)
        print(f"Import Setting Data for the ImportDirectory '{import_directory}' was retrieved "
              "successfully.")
    else:
        print(f"Failed to get the Import Setting Data for the Import Directory :{rv}")
    return setting


def import_ex_cs(conn: pywbem.WBEMConnection, service: pywbem.CIMInstance,
                 import_directory: str, setting: pywbem.CIMInstance) -> None:
    """The C# samples' ImportVirtualSystemEx call and its messages."""
    rv, out = conn.InvokeMethod("ImportVirtualSystemEx", service.path,
                                Params=[("ImportDirectory", import_directory),
                                        ("ImportSettingData", get_text(setting))])
    if rv == ReturnCode.Started:
        if job_completed(conn, out):
            print("VM were Imported successfully.")
        else:
            print("Failed to Imported VM")
    elif rv == ReturnCode.Completed:
        print("VM were Imported successfully.")
    else:
        print(f"Import virtual system failed with error:{rv}")


def get_import_setting_data_vbs(vbs: VbsScript, service: pywbem.CIMInstance,
                                import_directory: str, failed: str) -> pywbem.CIMInstance | None:
    """The VBScript samples' GetVirtualSystemImportSettingData; ``failed`` is the sample's
    message for a ReturnValue that is an error (with {0} for the value)."""
    rv, out = vbs.conn.InvokeMethod("GetVirtualSystemImportSettingData", service.path,
                                    Params=[("ImportDirectory", import_directory)])
    if rv == ReturnCode.Started:
        return import_setting_data(out) if vbs.wmi_job_completed(out) else None
    if rv == ReturnCode.Completed:
        return import_setting_data(out)
    vbs.write_log(failed.replace("{0}", str(rv)))
    return None


def object_required(obj: Any, name: str) -> Any:
    """VBScript's 'Object required' when a function returned nothing."""
    if obj is None:
        raise VbsError(0x800A01A8, f"Object required: '{name}'")
    return obj


SAMPLE_SWITCH = "Switch_For_Import_Export_Sample"


def create_switch(conn: pywbem.WBEMConnection, name: str, friendly_name: str,
                  learnable_addresses: int) -> tuple[pywbem.CIMInstanceName | None, str]:
    """Msvm_VirtualSwitchManagementService.CreateSwitch as the import samples call it.

    Returns (the new switch's path or None, why it failed: the ReturnValue, or the CIM error
    of a server without the switch service). On vsms the switch is an isolated libvirt network;
    a second call with the same Name fails with 32774."""
    try:
        services = conn.EnumerateInstanceNames("Msvm_VirtualSwitchManagementService")
        if not services:
            return None, "no Msvm_VirtualSwitchManagementService"
        rv, out = conn.InvokeMethod("CreateSwitch", services[-1], Params=[
            ("FriendlyName", friendly_name), ("Name", name),
            ("NumLearnableAddresses", pywbem.Uint32(learnable_addresses)),
            ("ScopeofResidence", None)])
    except pywbem.CIMError as err:
        return None, str(err.status_code)
    if rv != ReturnCode.Completed:
        return None, str(rv)
    return out_param(out, "CreatedVirtualSwitch"), ""


