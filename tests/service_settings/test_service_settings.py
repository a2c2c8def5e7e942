"""The service's settings and FormatError (issue 12 item 6) against a real ``vsms serve`` on
qemu:///system: Msvm_VirtualSystemManagementServiceSettingData read, changed by
ModifyServiceSettings, kept across a restart, refused outside the storage roots and for bad
values with nothing changed, used by DefineVirtualSystem (a VM without an ExternalDataRoot gets
DefaultExternalDataRoot); FormatError's text and refusals; a reader is refused."""

from __future__ import annotations

from pathlib import Path

import pywbem

from tests.components.conftest import Server
from tests.e2e import wbemflow
from vsms.cim import names
from vsms.cim.enums import ReturnCode
from vsms.mapping.components import SERVICE_SETTINGS

VSMS = names.VSMS


def settings(conn: pywbem.WBEMConnection) -> pywbem.CIMInstance:
    (inst,) = conn.EnumerateInstances(SERVICE_SETTINGS)
    assert conn.GetInstance(inst.path)["InstanceID"] == inst["InstanceID"]
    return inst


def modify(conn: pywbem.WBEMConnection, **values: object) -> tuple[int, dict[str, object]]:
    inst = pywbem.CIMInstance(SERVICE_SETTINGS, properties=values)
    return wbemflow.invoke(conn, VSMS, "ModifyServiceSettings", SettingData=inst.tocimxmlstr())


def test_service_settings(server: Server) -> None:
    conn = server.conn()
    before = settings(conn)
    assert before["InstanceID"].startswith("Microsoft:")
    assert before["DefaultExternalDataRoot"] == str(server.root)
    assert before["DefaultVirtualHardDiskPath"] == str(server.root / "Virtual Machines")
    assert (before["MinimumMacAddress"], before["MaximumMacAddress"]) == \
        ("00155D000000", "00155DFFFFFF")
    data, disks = server.root / "vm-data", server.root / "disks"
    data.mkdir(mode=0o755)
    disks.mkdir(mode=0o755)

    assert modify(conn, DefaultExternalDataRoot=str(data), DefaultVirtualHardDiskPath=str(disks),
                  MinimumMacAddress="00:15:5D:10:00:00", MaximumMacAddress="00155D10FFFF",
                  PrimaryOwnerName="lab", NumaSpanningEnabled=False) == (0, {})
    refusals = [
        (modify(conn, DefaultExternalDataRoot="/etc"), ReturnCode.ACCESS_DENIED, "outside"),
        (modify(conn, DefaultVirtualHardDiskPath=str(server.root / "nope")),
         ReturnCode.INVALID_PARAMETER, "not an existing directory"),
        (modify(conn, MinimumMacAddress="00155D20", MaximumMacAddress="00155D2FFFFF"),
         ReturnCode.INVALID_PARAMETER, "not a MAC address"),
        (modify(conn, MinimumMacAddress="01155D000000"), ReturnCode.INVALID_PARAMETER,
         "multicast"),
        (modify(conn, MinimumMacAddress="00155D200000", MaximumMacAddress="00155D100000"),
         ReturnCode.INVALID_PARAMETER, "minimum <= maximum"),
        (modify(conn, BiosLockString="short"), ReturnCode.INVALID_PARAMETER, "exactly 32"),
        (modify(conn, PrimaryOwnerName="x" * 65), ReturnCode.INVALID_PARAMETER, "at most 64"),
        (modify(conn, InstanceID="Microsoft:elsewhere"), ReturnCode.INVALID_PARAMETER,
         "not this service's"),
        (wbemflow.invoke(conn, VSMS, "ModifyServiceSettings", SettingData=pywbem.CIMInstance(
            names.VSGSD, properties={"ElementName": "x"}).tocimxmlstr()),
         ReturnCode.INVALID_PARAMETER, SERVICE_SETTINGS),
    ]
    for (rv, out), code, words in refusals:
        assert rv == code, (words, rv, out)
        assert words in str(out["ErrorDescription"]), (words, out)
    with server.reader() as reader:
        rv, _ = reader.InvokeMethod("ModifyServiceSettings", wbemflow.service_path(conn),
                                    SettingData=pywbem.CIMInstance(
                                        SERVICE_SETTINGS, properties={}).tocimxmlstr())
        assert rv == ReturnCode.ACCESS_DENIED

    server.restart()
    conn = server.conn()
    after = settings(conn)
    assert after["DefaultExternalDataRoot"] == str(data)
    assert after["DefaultVirtualHardDiskPath"] == str(disks)
    assert (after["MinimumMacAddress"], after["MaximumMacAddress"]) == \
        ("00155D100000", "00155D10FFFF")
    assert after["PrimaryOwnerName"] == "lab" and after["NumaSpanningEnabled"] is False

    # a VM defined without an ExternalDataRoot gets the new default
    vm = wbemflow.define_vm(conn, f"settings-{server.root.name}", memory_mb=64)
    (gsd,) = conn.Associators(vm, AssocClass=names.ELEMENT_SETTING_DATA, ResultClass=names.VSGSD)
    assert Path(gsd["ExternalDataRoot"]) == data


def error(message: str | None, cls: str = names.MSVM_ERROR, **extra: object) -> str:
    inst = pywbem.CIMInstance(cls, properties=extra)
    inst["Message"] = pywbem.CIMProperty("Message", message, type="string")
    text: str = inst.tocimxmlstr()
    return text


def test_format_error(server: Server) -> None:
    conn = server.conn()
    rv, out = wbemflow.invoke(conn, VSMS, "FormatError", Errors=[
        error("The disk is full."), error(None, MessageID="VSMS32773",
                                          MessageArguments=["Define", "bad name"])])
    assert rv == 0, out
    assert out["ErrorMessage"] == "The disk is full.\nVSMS32773: Define; bad name"
    bad = ReturnCode.INVALID_PARAMETER
    for errors, code, words in (
            ([], bad, "empty"), ([error("x", cls=names.VSGSD)], bad, "Msvm_Error"),
            ([error(None)], bad, "nothing to format"),
            (["<not xml"], ReturnCode.INCORRECT_DATA_TYPE, "not a CIM-XML INSTANCE")):
        rv, out = wbemflow.invoke(conn, VSMS, "FormatError", Errors=errors)
        assert rv == code, (words, rv, out)
        assert words in str(out["ErrorDescription"]), (words, out)
    with server.reader() as reader:  # read-only, but an operator's method
        rv, _ = reader.InvokeMethod("FormatError", wbemflow.service_path(conn),
                                    Errors=[error("x")])
        assert rv == ReturnCode.ACCESS_DENIED
