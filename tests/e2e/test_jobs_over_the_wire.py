"""Jobs as a Hyper-V client sees them over CIM-XML with authentication, on qemu:///system:
the Owner is the user who started the job, and an export job names its VM once."""

from __future__ import annotations

from pathlib import Path

import pytest
import pywbem

from tests.auth import test_service_roles as roles
from tests.e2e import wbemflow
from vsms.cim import names
from vsms.cim.enums import JobState, ReturnCode
from vsms.client import LocalClient

pytestmark = pytest.mark.qemu
live = roles.live  # a real Service behind a WbemServer with the three users


def define(conn: pywbem.WBEMConnection, name: str) -> pywbem.CIMInstanceName:
    gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": name})
    out = wbemflow.completed(conn, *wbemflow.invoke(conn, names.VSMS, "DefineVirtualSystem",
                                                    SystemSettingData=gsd.tocimxmlstr()))
    vm: pywbem.CIMInstanceName = out["DefinedSystem"]
    return vm


def test_the_owner_of_a_job_is_the_user_who_started_it(live: roles.Live,
                                                       storage_root: Path) -> None:
    admin, oper = live.connect("admin"), live.connect("oper")
    vm = define(admin, f"owner-{storage_root.name}")
    started = wbemflow.run_job(oper, vm, "RequestStateChange", RequestedState=pywbem.Uint16(2))
    assert started["JobState"] == JobState.COMPLETED, started["ErrorDescription"]
    assert started["Owner"] == "oper"
    stopped = wbemflow.run_job(admin, vm, "RequestStateChange", RequestedState=pywbem.Uint16(3))
    assert stopped["Owner"] == "admin"
    # the same job read by another user still names who started it
    assert oper.GetInstance(stopped.path)["Owner"] == "admin"
    # called without authentication (the Python API), a job has no owner
    rv, out = LocalClient(live.service.registry).invoke(vm, "RequestStateChange",
                                                       RequestedState=pywbem.Uint16(2))
    assert rv == ReturnCode.JOB_STARTED
    assert wbemflow.wait_job(admin, out["Job"])["Owner"] is None


def test_an_export_job_names_its_vm_once(live: roles.Live, storage_root: Path) -> None:
    admin = live.connect("admin")
    vm = define(admin, f"export-once-{storage_root.name}")
    (storage_root / "exports").mkdir()
    job = wbemflow.run_job(admin, names.VSMS, "ExportVirtualSystem", ComputerSystem=vm,
                           CopyVmState=False, ExportDirectory=str(storage_root / "exports"))
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    refs = admin.References(job.path, ResultClass=names.AFFECTED_JOB_ELEMENT)
    assert [r["AffectedElement"].keybindings["Name"] for r in refs] == [vm.keybindings["Name"]]
    mine = [a for a in admin.EnumerateInstances(names.AFFECTED_JOB_ELEMENT)
            if a["AffectingElement"].keybindings["InstanceID"] == job["InstanceID"]]
    assert len(mine) == 1
    assert [j["InstanceID"] for j in admin.Associators(
        vm, AssocClass=names.AFFECTED_JOB_ELEMENT)].count(job["InstanceID"]) == 1
