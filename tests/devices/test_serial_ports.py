"""COM 1 and COM 2 as v1 defines them (RASDs whose Connection names a pipe) reach a Unix
socket on the host that QEMU listens on; over CIM-XML against qemu:///system and a real QEMU."""

from __future__ import annotations

import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import pywbem

from tests.e2e import wbemflow
from tests.e2e.conftest import Served
from vsms.cim import names
from vsms.cim.enums import EnabledState, JobState, ReturnCode

pytestmark = pytest.mark.qemu


def com_ports(conn: pywbem.WBEMConnection, vm: pywbem.CIMInstanceName
              ) -> dict[str, pywbem.CIMInstance]:
    return {str(r["ElementName"]): r for r in wbemflow.settings_of(conn, vm)
            if r["ResourceType"] == 17}


def refused(conn: pywbem.WBEMConnection, vm: pywbem.CIMInstanceName,
            rasd: pywbem.CIMInstance) -> tuple[int, str]:
    rv, out = wbemflow.invoke(conn, names.VSMS, "ModifyVirtualSystemResources",
                              ComputerSystem=vm, ResourceSettingData=[rasd.tocimxmlstr()])
    if rv == ReturnCode.JOB_STARTED:
        job = wbemflow.wait_job(conn, out["Job"])
        assert job["JobState"] == JobState.EXCEPTION
        return int(job["ErrorCode"]), str(job["ErrorDescription"])
    return rv, str(out.get("ErrorDescription"))


def serials(guid: str) -> list[ET.Element]:
    xml = subprocess.run(["virsh", "-c", "qemu:///system", "dumpxml", guid], check=True,
                         capture_output=True, text=True).stdout
    return ET.fromstring(xml).findall("devices/serial")


def wait_socket(path: Path, deadline: float = 20.0) -> socket.socket:
    end = time.monotonic() + deadline
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(str(path))
            return s
        except OSError:
            s.close()
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def test_com_ports_connect_to_host_sockets(served: Served, conn: pywbem.WBEMConnection) -> None:
    name = f"com-{served.token}"
    gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": name,
                                                      "ExternalDataRoot": str(served.root)})
    out = wbemflow.completed(conn, *wbemflow.invoke(conn, names.VSMS, "DefineVirtualSystem",
                                                    SystemSettingData=gsd))
    vm: pywbem.CIMInstanceName = out["DefinedSystem"]
    guid = str(vm.keybindings["Name"])
    served.guids.add(guid.upper())
    ports = com_ports(conn, vm)
    assert sorted(ports) == ["COM 1", "COM 2"]
    assert all(p["Connection"] is None for p in ports.values())
    assert [s.get("type") for s in serials(guid)] == ["pty"]  # COM 1 keeps the console

    # COM 1 as a named pipe (its socket in the ExternalDataRoot), COM 2 as a socket path
    com1, com2 = ports["COM 1"], ports["COM 2"]
    com1["Connection"] = ["\\\\.\\pipe\\vsms-com1"]
    wbemflow.modify(conn, vm, com1)
    com2["Connection"] = [str(served.root / "com2.sock")]
    wbemflow.modify(conn, vm, com2)
    ports = com_ports(conn, vm)
    assert ports["COM 1"]["Connection"] == ["\\\\.\\pipe\\vsms-com1"]
    assert ports["COM 2"]["Connection"] == [str(served.root / "com2.sock")]
    sources = [(s.get("type"), s.find("source").get("path"))  # type: ignore[union-attr]
               for s in serials(guid)]
    assert sources == [("unix", str(served.root / "vsms-com1")),
                       ("unix", str(served.root / "com2.sock"))]
    # the serial port device and its RASD
    dev = [d for d in conn.EnumerateInstances("Msvm_SerialPort")
           if d["SystemName"] == guid and d["ElementName"] == "COM 1"]
    (rasd,) = conn.Associators(dev[0].path, AssocClass=names.ELEMENT_SETTING_DATA)
    assert rasd["Connection"] == ["\\\\.\\pipe\\vsms-com1"]

    wbemflow.request_state(conn, vm, EnabledState.ENABLED)
    try:
        for path in (served.root / "vsms-com1", served.root / "com2.sock"):
            with wait_socket(path) as s:  # QEMU listens: the host end opens
                s.settimeout(0.5)
                s.sendall(b"\r\n")
    finally:
        wbemflow.request_state(conn, vm, EnabledState.DISABLED)

    # refusals name the cause; nothing changes
    for value, code, words in (
            ("relative.sock", ReturnCode.INVALID_PARAMETER, "neither a named pipe"),
            ("\\\\.\\pipe\\bad/name", ReturnCode.INVALID_PARAMETER, "pipe name"),
            ("/etc/vsms-com.sock", ReturnCode.ACCESS_DENIED, "outside"),
            (str(served.root / "missing" / "c.sock"), ReturnCode.INVALID_PARAMETER,
             "does not exist")):
        bad = com_ports(conn, vm)["COM 2"]
        bad["Connection"] = [value]
        rv, message = refused(conn, vm, bad)
        assert rv == code and words in message, (value, rv, message)
    assert com_ports(conn, vm)["COM 2"]["Connection"] == [str(served.root / "com2.sock")]
    rv, out = wbemflow.invoke(conn, names.VSMS, "RemoveVirtualSystemResources",
                              TargetSystem=vm, ResourceSettingData=[ports["COM 1"].path])
    if rv == ReturnCode.JOB_STARTED:
        job = wbemflow.wait_job(conn, out["Job"])
        rv, text = int(job["ErrorCode"]), str(job["ErrorDescription"])
    else:
        text = str(out.get("ErrorDescription"))
    assert rv == ReturnCode.INVALID_PARAMETER and "cannot be removed" in text

    # disconnect COM 2; export + import (same ID) keeps COM 1
    com2 = com_ports(conn, vm)["COM 2"]
    com2.properties["Connection"] = pywbem.CIMProperty("Connection", [], type="string",
                                                       is_array=True)
    wbemflow.modify(conn, vm, com2)
    assert com_ports(conn, vm)["COM 2"]["Connection"] is None
    wbemflow.export(conn, vm, served.root / "exp")
    job = wbemflow.run_job(conn, names.VSMS, "DestroyVirtualSystem", ComputerSystem=vm)
    assert job["JobState"] == JobState.COMPLETED
    job = wbemflow.run_job(conn, names.VSMS, "ImportVirtualSystem",
                           ImportDirectory=str(served.root / "exp" / name), GenerateNewID=False)
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    again = com_ports(conn, vm)
    assert again["COM 1"]["Connection"] == ["\\\\.\\pipe\\vsms-com1"]
    assert again["COM 2"]["Connection"] is None
