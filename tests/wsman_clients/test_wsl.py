"""Debian's wsl scripts, unmodified (bash + curl + xmllint), against a real ``vsms serve`` on
qemu:///system: wslid, wslenum (plain, WQL, EPR mode), wslget, wslinvoke. Each script writes
every request and response it exchanges to files in its working directory; the tests read
those responses."""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import pywbem

from tests.wsman.conftest import WsServer
from tests.wsman_clients.conftest import WMI, wsl

pytestmark = pytest.mark.qemu
WQL = "http://schemas.microsoft.com/wbem/wsman/1/WQL"
N = "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
W = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
A = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
CIMV2 = WMI + "root/cimv2/"
VIRT = WMI + "root/virtualization/"


def responses(home: Path) -> list[ET.Element]:
    files = sorted(home.glob("response-*.xml"), key=lambda p: int(p.stem.split("-")[1]))
    return [ET.parse(f).getroot() for f in files]


def items(home: Path) -> list[ET.Element]:
    out: list[ET.Element] = []
    for env in responses(home):
        assert env.find(".//{http://www.w3.org/2003/05/soap-envelope}Fault") is None, \
            ET.tostring(env)
        for its in env.iter(f"{{{N}}}Items"):
            out.extend(its)
    return out


XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"


def child(el: ET.Element, name: str) -> str | None:
    ns = el.tag[1:].split("}")[0]
    found = el.find(f"{{{ns}}}{name}")
    return None if found is None else found.text


def ok(res: subprocess.CompletedProcess[str]) -> None:
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-2000:])


def test_wslid(ws: WsServer, tmp_path: Path) -> None:
    ok(wsl(ws, tmp_path, "wslid", "check"))
    (env,) = responses(tmp_path)
    ident = env.find(".//{http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd}"
                     "IdentifyResponse")
    assert ident is not None, ET.tostring(env)
    values = {c.tag.split("}")[1]: c.text for c in ident}
    assert values["ProtocolVersion"] == "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
    assert values["ProductVendor"] and values["ProductVersion"]


def test_wslenum_cimv2_and_wslget(ws: WsServer, tmp_path: Path) -> None:
    ok(wsl(ws, tmp_path, "wslenum", CIMV2 + "Win32_ComputerSystem"))
    (cs,) = items(tmp_path)
    name = child(cs, "Name")
    assert name == os.uname().nodename.split(".")[0].upper()
    assert child(cs, "NumberOfLogicalProcessors") == str(os.cpu_count())
    get_home = tmp_path / "get"
    get_home.mkdir()
    ok(wsl(ws, get_home, "wslget", CIMV2 + "Win32_ComputerSystem", f"Name={name}"))
    (env,) = responses(get_home)
    got = env.find(f".//{{{CIMV2}Win32_ComputerSystem}}Win32_ComputerSystem")
    assert got is not None and child(got, "DNSHostName") == child(cs, "DNSHostName")


def test_wslenum_wql_and_epr_modes(ws: WsServer, tmp_path: Path) -> None:
    conn = pywbem.WBEMConnection(ws.served.url, (ws.served.user, ws.served.password),
                                 default_namespace="root/virtualization")
    want = sorted(i["Name"] for i in conn.EnumerateInstances("Msvm_ComputerSystem"))
    wql = tmp_path / "wql"
    wql.mkdir()
    ok(wsl(ws, wql, "wslenum", VIRT + "*", "-dialect", WQL, "-filter",
           "SELECT * FROM Msvm_ComputerSystem"))
    assert sorted(child(i, "Name") or "" for i in items(wql)) == want
    # an empty CIM_DataFile query (what inventory tools send for vmms.exe) is no fault
    dfile = tmp_path / "datafile"
    dfile.mkdir()
    ok(wsl(ws, dfile, "wslenum", CIMV2 + "*", "-dialect", WQL, "-filter",
           "SELECT Version FROM CIM_DataFile WHERE Name = 'C:\\\\Windows\\\\System32\\\\vmms.exe'"))
    assert items(dfile) == [] and len(responses(dfile)) >= 1
    epr = tmp_path / "epr"
    epr.mkdir()
    ok(wsl(ws, epr, "wslenum", VIRT + "Msvm_ComputerSystem", "-mode", "epr"))
    names = []
    for ref in items(epr):
        assert ref.find(f"{{{A}}}Address") is not None
        uri = ref.find(f".//{{{W}}}ResourceURI")
        assert uri is not None and uri.text == VIRT + "Msvm_ComputerSystem"
        sel = {s.get("Name"): s.text for s in ref.iter(f"{{{W}}}Selector")}
        names.append(sel["Name"] or "")
    assert sorted(names) == want


def test_wslinvoke(ws: WsServer, tmp_path: Path) -> None:
    disk = ws.served.root / "wsl-info.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    os.chmod(disk, 0o644)
    ok(wsl(ws, tmp_path, "wslinvoke", VIRT + "Msvm_ImageManagementService",
           "GetVirtualHardDiskInfo", f"Path={disk}"))
    out = next(e for e in reversed(responses(tmp_path))
               if e.find(f".//{{{VIRT}Msvm_ImageManagementService}}"
                         "GetVirtualHardDiskInfo_OUTPUT") is not None)
    body = out.find(f".//{{{VIRT}Msvm_ImageManagementService}}GetVirtualHardDiskInfo_OUTPUT")
    assert body is not None
    assert child(body, "ReturnValue") == "0", ET.tostring(body)
    # the OUT embedded instance: the parameter's element, typed as the class, holds its
    # properties in that class's own resource-URI namespace
    info = next(e for e in body if e.tag.endswith("}Info"))
    assert (info.get(XSI_TYPE) or "").endswith(":Msvm_VirtualHardDiskInfo_Type")
    size = info.findtext(f"{{{VIRT}Msvm_VirtualHardDiskInfo}}MaxInternalSize")
    assert size == str(64 * 1024 * 1024)  # the disk just made
