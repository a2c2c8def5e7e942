"""The seed flow over WS-Management on qemu:///system: define a VM → ExportVirtualSystem →
ImportVirtualSystem (GenerateNewID TRUE and FALSE) with 4096 and a Job EPR → the job polled by
Get until JobState 7 → the VM is there, Defined; the refusals (the same ID while the original
exists, the export root, a second in-place import) end as they do over CIM-XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import pywbem

from tests.e2e import wbemflow
from tests.wsman.conftest import NS, WMI, WsServer, text
from tests.wsman.test_operations import CS, VSMS_URI, cimxml, epr_element, invoke, prop
from vsms.cim import names
from vsms.cim.enums import EnabledState, JobState, ReturnCode

pytestmark = pytest.mark.qemu
P = f"{{{VSMS_URI}}}"


def job_of(ws: WsServer, out: ET.Element) -> dict[str, str | None]:
    """The OUT Job polled by WS-Man Get until it has finished: JobState, ErrorCode, InstanceID."""
    from tests.wsman.test_operations import wait_job
    state = wait_job(ws, out)
    job = out.find(f"{P}Job")
    assert job is not None
    from pypsrp.wsman import SelectorSet
    sel = SelectorSet()
    for s in job.iterfind("a:ReferenceParameters/w:SelectorSet/w:Selector", NS):
        sel.add_option(s.get("Name") or "", s.text or "")
    inst = ws.client().get(text(job.find("a:ReferenceParameters/w:ResourceURI", NS)),
                           selector_set=sel)[0]
    return {"JobState": state, "ErrorCode": prop(inst, "ErrorCode"),
            "ErrorDescription": prop(inst, "ErrorDescription"),
            "InstanceID": prop(inst, "InstanceID")}


def ws_import(ws: WsServer, directory: Path, new_id: bool) -> tuple[int, dict[str, str | None]]:
    out = invoke(ws, "ImportVirtualSystem", [("ImportDirectory", str(directory)),
                                             ("GenerateNewID", "true" if new_id else "false")])
    rv = int(text(out.find(f"{P}ReturnValue")))
    return rv, (job_of(ws, out) if rv == ReturnCode.JOB_STARTED else {})


def cim_import(conn: pywbem.WBEMConnection, directory: Path, new_id: bool
               ) -> tuple[int, dict[str, str | None]]:
    rv, out = wbemflow.invoke(conn, names.VSMS, "ImportVirtualSystem",
                              ImportDirectory=str(directory), GenerateNewID=new_id)
    if rv != ReturnCode.JOB_STARTED:
        return rv, {}
    job = wbemflow.wait_job(conn, out["Job"])
    return rv, {"JobState": str(job["JobState"]),
                "ErrorCode": None if job["ErrorCode"] is None else str(job["ErrorCode"])}


def same(a: tuple[int, dict[str, str | None]], b: tuple[int, dict[str, str | None]]) -> None:
    assert a[0] == b[0], (a, b)
    assert a[1].get("JobState") == b[1].get("JobState"), (a, b)
    assert a[1].get("ErrorCode") == b[1].get("ErrorCode"), (a, b)


def test_define_export_import_over_wsman(ws: WsServer) -> None:
    root = ws.served.root
    name = f"seed-{root.name}"
    gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": name})
    out = invoke(ws, "DefineVirtualSystem", [("SystemSettingData", gsd.tocimxmlstr())])
    vm = out.find(f"{P}DefinedSystem")
    assert vm is not None
    if text(out.find(f"{P}ReturnValue")) == "4096":
        assert job_of(ws, out)["JobState"] == "7"
    guid = next(s.text for s in vm.iterfind("a:ReferenceParameters/w:SelectorSet/w:Selector",
                                            NS) if s.get("Name") == "Name")
    exports = []
    for i in range(3):
        target = root / f"wsexp{i}"
        target.mkdir(mode=0o755)
        out = invoke(ws, "ExportVirtualSystem", [("ComputerSystem", epr_element(vm)),
                                                 ("CopyVmState", "true"),
                                                 ("ExportDirectory", str(target))])
        assert text(out.find(f"{P}ReturnValue")) == "4096"
        assert job_of(ws, out)["JobState"] == str(int(JobState.COMPLETED))
        exports.append(target)

    # GenerateNewID TRUE: 4096 and a Job EPR; the job is polled by Get until 7; a Defined copy
    rv, job = ws_import(ws, exports[0] / name, True)
    assert rv == ReturnCode.JOB_STARTED and job["JobState"] == "7", job
    conn = cimxml(ws)
    found = {str(r["Name"]): r for r in conn.ExecQuery(
        "WQL", f"SELECT * FROM Msvm_ComputerSystem WHERE ElementName = '{name}'")}
    assert len(found) == 2 and guid in found
    copy = next(r for n, r in found.items() if n != guid)
    assert copy["EnabledState"] == EnabledState.DISABLED

    # an OUT embedded instance: a nested element typed in its own class's namespace
    out = invoke(ws, "GetVirtualSystemImportSettingData",
                 [("ImportDirectory", str(exports[1] / name))])
    assert text(out.find(f"{P}ReturnValue")) == "0"
    isd = out.find(f"{P}ImportSettingData")
    assert isd is not None
    typed = isd.get(f"{{{NS['xsi']}}}type") or ""
    assert typed.startswith("q:") and typed.endswith("_Type")
    own = WMI + typed[2:-len("_Type")]
    assert isd and all(c.tag.startswith(f"{{{own}}}") for c in isd)
    assert text(isd.find(f"{{{own}}}CreateCopy")) == "true"
    assert text(isd.find(f"{{{own}}}Name")) == name

    # a second in-place import of the same directory: as over CIM-XML
    over_ws = ws_import(ws, exports[0] / name, True)
    rv, job = cim_import(conn, exports[1] / name, True)
    assert rv == ReturnCode.JOB_STARTED and job["JobState"] == "7", job
    same(over_ws, cim_import(conn, exports[1] / name, True))
    assert over_ws[0] != ReturnCode.JOB_STARTED or over_ws[1]["JobState"] != "7"

    # the export root instead of the VM's directory: as over CIM-XML
    same(ws_import(ws, exports[2], True), cim_import(conn, exports[2], True))

    # GenerateNewID FALSE while the original exists: the job fails with "system in use"
    rv, job = ws_import(ws, exports[2] / name, False)
    assert rv == ReturnCode.JOB_STARTED
    assert job["JobState"] == str(int(JobState.EXCEPTION))
    assert job["ErrorCode"] == str(int(ReturnCode.SYSTEM_IN_USE))
    assert guid in (job["ErrorDescription"] or "")

    # … and succeeds once the original is gone, keeping its GUID, Defined
    out = invoke(ws, "DestroyVirtualSystem", [("ComputerSystem", epr_element(vm))])
    if text(out.find(f"{P}ReturnValue")) == "4096":
        assert job_of(ws, out)["JobState"] == "7"
    rv, job = ws_import(ws, exports[2] / name, False)
    assert rv == ReturnCode.JOB_STARTED and job["JobState"] == "7", job
    from pypsrp.wsman import SelectorSet
    sel = SelectorSet()
    sel.add_option("CreationClassName", "Msvm_ComputerSystem")
    sel.add_option("Name", guid)
    again = ws.client().get(CS, selector_set=sel)[0]
    assert prop(again, "EnabledState") == str(int(EnabledState.DISABLED))
    assert prop(again, "ElementName") == name
