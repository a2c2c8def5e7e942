"""The identity the guest sees (issue 12 item 8): BIOSGUID is the SMBIOS UUID in Windows' GUID
byte order, the serial numbers reach QEMU's SMBIOS tables, export + import keeps them (same ID)
or gives new ones (new ID); all over CIM-XML against qemu:///system and a real QEMU."""

from __future__ import annotations

import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import pywbem

from tests.e2e import wbemflow
from tests.e2e.conftest import Served
from vsms.cim import names
from vsms.cim.enums import EnabledState, JobState, ReturnCode

pytestmark = pytest.mark.qemu

SERIALS = ("BIOSSerialNumber", "BaseBoardSerialNumber", "ChassisSerialNumber")


def vssd(conn: pywbem.WBEMConnection, vm: pywbem.CIMInstanceName) -> pywbem.CIMInstance:
    found = conn.Associators(vm, AssocClass=names.SETTINGS_DEFINE_STATE, ResultClass=names.VSSD)
    assert len(found) == 1
    inst: pywbem.CIMInstance = found[0]
    return inst


def domain_xml(guid: str) -> ET.Element:
    out = subprocess.run(["virsh", "-c", "qemu:///system", "dumpxml", guid], check=True,
                         capture_output=True, text=True).stdout
    return ET.fromstring(out)


def qemu_cmdline(guid: str, deadline: float = 30.0) -> list[str]:
    """The command line of the QEMU process running domain ``guid`` (its name)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                args = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            text = [a.decode(errors="replace") for a in args if a]
            if text and "qemu" in text[0] and any(f"guest={guid}" in a for a in text):
                return text
        time.sleep(0.2)
    raise AssertionError(f"no QEMU process for {guid}")


def swap_fields(text: str) -> str:
    """A GUID with its first three fields byte-swapped (how Windows reads SMBIOS bytes)."""
    return str(uuid.UUID(bytes_le=uuid.UUID(text.strip("{}")).bytes)).upper()


def test_bios_guid_and_serials_reach_the_guest(served: Served,
                                               conn: pywbem.WBEMConnection) -> None:
    vm = wbemflow.define_vm(conn, f"smbios-{served.token}", track=served.guids)
    guid = str(vm.keybindings["Name"])
    settings = vssd(conn, vm)
    bios_guid = str(settings["BIOSGUID"])
    assert bios_guid.startswith("{") and bios_guid.endswith("}")
    serials = {p: str(settings[p]) for p in SERIALS}
    assert all(serials.values()) and len(set(serials.values())) == 3

    root = domain_xml(guid)
    smbios_uuid = (root.findtext("uuid") or "").upper()
    assert smbios_uuid == guid.upper()
    # BIOSGUID holds the SMBIOS UUID with its first three fields byte-swapped ...
    assert swap_fields(bios_guid) == smbios_uuid
    assert bios_guid.strip("{}") != smbios_uuid  # (the swap is not a no-op for this GUID)
    # ... e.g. the first field read backwards, byte by byte
    first = smbios_uuid.split("-")[0]
    assert bios_guid[1:9] == "".join(reversed([first[i:i + 2] for i in range(0, 8, 2)]))
    assert root.find("os/smbios").get("mode") == "sysinfo"  # type: ignore[union-attr]
    for section, prop in (("system", "BIOSSerialNumber"), ("baseBoard", "BaseBoardSerialNumber"),
                          ("chassis", "ChassisSerialNumber")):
        assert root.findtext(f"sysinfo/{section}/entry[@name='serial']") == serials[prop]

    wbemflow.request_state(conn, vm, EnabledState.ENABLED)
    try:
        args = qemu_cmdline(guid)
        assert args[args.index("-uuid") + 1].upper() == smbios_uuid
        smbios = [args[i + 1] for i, a in enumerate(args) if a == "-smbios"]
        assert any(s.startswith("type=1") and f"serial={serials['BIOSSerialNumber']}" in s
                   for s in smbios), smbios
        assert any(s.startswith("type=2") and f"serial={serials['BaseBoardSerialNumber']}" in s
                   for s in smbios), smbios
        assert any(s.startswith("type=3") and f"serial={serials['ChassisSerialNumber']}" in s
                   for s in smbios), smbios
    finally:
        wbemflow.request_state(conn, vm, EnabledState.DISABLED)


def test_serials_set_by_a_client_and_bios_guid_refused(served: Served,
                                                       conn: pywbem.WBEMConnection) -> None:
    vm = wbemflow.define_vm(conn, f"serial-{served.token}", track=served.guids)
    guid = str(vm.keybindings["Name"])
    settings = vssd(conn, vm)
    settings["BIOSSerialNumber"] = "ASSET-0042"
    settings["ChassisSerialNumber"] = "CH 7"
    wbemflow.completed(conn, *wbemflow.invoke(conn, names.VSMS, "ModifyVirtualSystem",
                                              ComputerSystem=vm,
                                              SystemSettingData=settings.tocimxmlstr()))
    after = vssd(conn, vm)
    assert after["BIOSSerialNumber"] == "ASSET-0042" and after["ChassisSerialNumber"] == "CH 7"
    assert after["BaseBoardSerialNumber"] == settings["BaseBoardSerialNumber"]
    assert domain_xml(guid).findtext("sysinfo/system/entry[@name='serial']") == "ASSET-0042"

    for prop, value, words in (("BIOSGUID", "{00000000-1111-2222-3333-444444444444}",
                                "BIOSGUID"),
                               ("BaseBoardSerialNumber", "x" * 65, "BaseBoardSerialNumber")):
        bad = vssd(conn, vm)
        bad[prop] = value
        rv, out = wbemflow.invoke(conn, names.VSMS, "ModifyVirtualSystem", ComputerSystem=vm,
                                  SystemSettingData=bad.tocimxmlstr())
        if rv == ReturnCode.JOB_STARTED:
            job = wbemflow.wait_job(conn, out["Job"])
            assert job["JobState"] == JobState.EXCEPTION
            rv, message = int(job["ErrorCode"]), str(job["ErrorDescription"])
        else:
            message = str(out.get("ErrorDescription"))
        assert rv == ReturnCode.INVALID_PARAMETER and words in message, (rv, message)
    unchanged = vssd(conn, vm)
    assert [unchanged[p] for p in ("BIOSGUID", *SERIALS)] == [after[p] for p in
                                                              ("BIOSGUID", *SERIALS)]


def test_export_import_keeps_or_renews_the_identity(served: Served,
                                                    conn: pywbem.WBEMConnection) -> None:
    name = f"smbios-exp-{served.token}"
    vm = wbemflow.define_vm(conn, name, track=served.guids)
    guid = str(vm.keybindings["Name"])
    before = vssd(conn, vm)
    exports = [served.root / "e1", served.root / "e2"]
    for directory in exports:
        wbemflow.export(conn, vm, directory)

    job = wbemflow.run_job(conn, names.VSMS, "ImportVirtualSystem",
                           ImportDirectory=str(exports[0] / name), GenerateNewID=True)
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    (copy,) = wbemflow.affected_vms(conn, job)
    served.guids.add(str(copy["Name"]).upper())
    renewed = vssd(conn, copy.path)
    assert copy["Name"] != guid
    assert swap_fields(str(renewed["BIOSGUID"])) == str(copy["Name"]).upper()
    for prop in ("BIOSGUID", *SERIALS):
        assert renewed[prop] and renewed[prop] != before[prop], prop

    job = wbemflow.run_job(conn, names.VSMS, "DestroyVirtualSystem", ComputerSystem=vm)
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    job = wbemflow.run_job(conn, names.VSMS, "ImportVirtualSystem",
                           ImportDirectory=str(exports[1] / name), GenerateNewID=False)
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    (same,) = wbemflow.affected_vms(conn, job)
    kept = vssd(conn, same.path)
    assert same["Name"] == guid
    assert [kept[p] for p in ("BIOSGUID", *SERIALS)] == [before[p] for p in ("BIOSGUID",
                                                                            *SERIALS)]
    root = domain_xml(guid)
    assert root.findtext("sysinfo/chassis/entry[@name='serial']") == before["ChassisSerialNumber"]
