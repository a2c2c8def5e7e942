"""Snapshots through a real ``vsms serve`` (qemu:///system): ``vsms snapshot`` end to end, and
CreateVirtualSystemSnapshot and RemoveVirtualSystemSnapshot invoked over WS-Management (pypsrp)
with EPR arguments."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
import pywbem

from tests.cli.conftest import Vsms
from tests.lifecycle.service import make_vhd
from tests.wsman.conftest import NS, WsServer, epr_into
from tests.wsman.conftest import ws as ws  # the module-scoped server fixture
from tests.wsman.test_operations import VSMS_URI, cimxml, invoke, wait_job

pytestmark = pytest.mark.qemu


@pytest.fixture
def vsms(ws: WsServer) -> Iterator[Vsms]:
    yield Vsms.of(ws.served)


def vm_epr(guid: str) -> ET.Element:
    return epr_into(ET.Element("x"), pywbem.CIMInstanceName(
        "Msvm_ComputerSystem", {"CreationClassName": "Msvm_ComputerSystem", "Name": guid}))


def test_cli_and_wsman(ws: WsServer, vsms: Vsms) -> None:
    name = f"snap-cli-{ws.served.root.name}"
    disk = ws.served.root / "snap-cli.vhd"
    make_vhd(disk, "16M")
    vm = vsms.ok("--output", "json", "vm", "create", name, "--disk", str(disk)).json()["vm"]
    assert vsms.ok("snapshot", "list", name).out.strip() == f"'{name}' has no snapshots"

    first = vsms.ok("--output", "json", "snapshot", "create", name).json()["snapshot"]
    assert first["name"].startswith(f"{name} - (") and first["parent"] is None
    res = vsms.ok("snapshot", "create", vm["id"])
    assert res.out.startswith(f"Created snapshot '{name} - (")
    assert "100%" in res.err  # the job's progress
    listed = vsms.ok("--output", "json", "snapshot", "list", name).json()
    second = next(s for s in listed["snapshots"] if s["id"] != first["id"])
    assert second["parent"] == first["id"] and listed["previous"] == second["id"]
    tree = vsms.ok("snapshot", "list", name).out.splitlines()
    assert tree[0].startswith(first["name"]) and tree[1].startswith("  ")
    assert tree[1].endswith("<- now")

    # CreateVirtualSystemSnapshot over WS-Man: the VM as an EPR, the new settings as an EPR
    out = invoke(ws, "CreateVirtualSystemSnapshot", [("SourceSystem", vm_epr(vm["id"]))])
    assert out.findtext(f"{{{VSMS_URI}}}ReturnValue") == "4096", ET.tostring(out)
    assert wait_job(ws, out) == "7"
    made = out.find(f"{{{VSMS_URI}}}SnapshotSettingData")
    assert made is not None, ET.tostring(out)
    iid = next(s.text for s in made.iterfind("a:ReferenceParameters/w:SelectorSet/w:Selector",
                                             NS) if s.get("Name") == "InstanceID")
    snap = cimxml(ws).GetInstance(pywbem.CIMInstanceName(
        "Msvm_VirtualSystemSettingData", {"InstanceID": iid}))
    assert snap["SettingType"] == 5 and snap["SystemName"] == vm["id"]
    # and removed over WS-Man, the EPR it returned passed back as SnapshotSettingData
    out = invoke(ws, "RemoveVirtualSystemSnapshot", [("SnapshotSettingData", made)])
    assert out.findtext(f"{{{VSMS_URI}}}ReturnValue") == "4096", ET.tostring(out)
    assert wait_job(ws, out) == "7"
    with pytest.raises(pywbem.CIMError):
        cimxml(ws).GetInstance(snap.path)

    applied = vsms.ok("--output", "json", "snapshot", "apply", name, first["id"]).json()
    assert applied["ok"] and applied["job"]["state"] == "Completed"
    missing = vsms("snapshot", "apply", name, "no-such-snapshot")
    assert missing.rc == 1 and "has no snapshot 'no-such-snapshot'" in missing.err
    vsms.ok("snapshot", "remove", "--tree", name, first["id"])
    assert vsms.ok("--output", "json", "snapshot", "list", name).json()["snapshots"] == []
    shown = vsms.ok("--output", "json", "vm", "show", name).json()
    assert shown["disks"] == [{"location": "IDE 0:0", "path": str(disk)}]  # merged back
    vsms.ok("vm", "destroy", name)
