"""The Hyper-V flow through pywbem: define → add a VHD → export → import with a new and the
same ID → find the VM → start it → turn it off, all over CIM-XML against qemu:///system."""

from __future__ import annotations

from pathlib import Path

import pytest
import pywbem

from tests.e2e import wbemflow
from tests.e2e.conftest import Served
from vsms.cim import names
from vsms.cim.enums import EnabledState, JobState, ReturnCode

pytestmark = pytest.mark.qemu


def by_name(conn: pywbem.WBEMConnection, name: str) -> dict[str, pywbem.CIMInstance]:
    rows = conn.ExecQuery("WQL", f"SELECT * FROM Msvm_ComputerSystem WHERE ElementName = "
                                 f"'{name}'")
    return {str(r["Name"]): r for r in rows}


def imported(conn: pywbem.WBEMConnection, directory: Path, new_id: bool) -> pywbem.CIMInstance:
    """ImportVirtualSystem, its job polled until it ends; the imported VM, found through
    Msvm_AffectedJobElement."""
    job = wbemflow.run_job(conn, names.VSMS, "ImportVirtualSystem",
                           ImportDirectory=str(directory), GenerateNewID=new_id)
    assert job["JobState"] == JobState.COMPLETED, (job["ErrorCode"], job["ErrorDescription"])
    assert job["PercentComplete"] == 100 and job["ErrorCode"] == 0
    vms = wbemflow.affected_vms(conn, job)
    assert len(vms) == 1
    return vms[0]


def test_define_export_import_start(served: Served, conn: pywbem.WBEMConnection) -> None:
    name = f"src-{served.token}"
    vm = wbemflow.vm_with_disk(conn, served.root, name)
    guid = str(vm.keybindings["Name"])
    disk = [r for r in wbemflow.settings_of(conn, vm) if r["ResourceType"] == 21]
    assert [d["Connection"] for d in disk] == [[str(served.root / "vms" / f"{name}.vhd")]]
    assert len([r for r in wbemflow.settings_of(conn, vm) if r["ResourceType"] == 10]) == 1

    exports = [served.root / "exp1", served.root / "exp2"]
    for directory in exports:
        wbemflow.export(conn, vm, directory)
        assert (directory / name / "Virtual Machines" / f"{guid}.exp").is_file()
        assert (directory / name / "Virtual Hard Disks" / f"{name}.vhd").is_file()

    # GenerateNewID TRUE beside the original: a second VM of the same name, a new GUID
    copy = imported(conn, exports[0] / name, new_id=True)
    assert copy["Name"] != guid and copy["ElementName"] == name
    assert copy["EnabledState"] == EnabledState.DISABLED
    assert set(by_name(conn, name)) == {guid, copy["Name"]}

    # GenerateNewID FALSE while the original exists fails in the job, naming it
    job = wbemflow.run_job(conn, names.VSMS, "ImportVirtualSystem",
                           ImportDirectory=str(exports[1] / name), GenerateNewID=False)
    assert job["JobState"] == JobState.EXCEPTION
    assert job["ErrorCode"] == ReturnCode.SYSTEM_IN_USE and guid in job["ErrorDescription"]

    # … and succeeds once the original is destroyed, keeping its GUID
    job = wbemflow.run_job(conn, names.VSMS, "DestroyVirtualSystem", ComputerSystem=vm)
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    assert set(by_name(conn, name)) == {copy["Name"]}
    same = imported(conn, exports[1] / name, new_id=False)
    assert same["Name"] == guid
    found = by_name(conn, name)
    assert set(found) == {guid, copy["Name"]}
    assert found[guid]["Caption"] == "Virtual Machine"
    disks = [r for r in wbemflow.settings_of(conn, same.path) if r["ResourceType"] == 21]
    assert [d["Connection"] for d in disks] == [
        [str(exports[1] / name / "Virtual Hard Disks" / f"{name}.vhd")]]

    # start the imported VM, then turn it off
    target = found[guid].path
    wbemflow.request_state(conn, target, EnabledState.ENABLED)
    assert wbemflow.enabled_state(conn, target) == EnabledState.ENABLED
    wbemflow.request_state(conn, target, EnabledState.DISABLED)
    assert wbemflow.enabled_state(conn, target) == EnabledState.DISABLED
