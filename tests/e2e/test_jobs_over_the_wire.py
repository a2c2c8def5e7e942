"""Jobs as a Hyper-V client sees them over CIM-XML with authentication, on qemu:///system:
the Owner is the user who started the job, and an export job names its VM once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pywbem

from tests.auth.conftest import PASSWORDS, fill_users
from tests.e2e import wbemflow
from vsms.app import Service
from vsms.auth.setup import authenticator_from_settings
from vsms.auth.users import UsersFile
from vsms.cim import names
from vsms.cim.enums import JobState, ReturnCode
from vsms.client import LocalClient
from vsms.settings import Settings
from vsms.wbem.server import WbemServer

pytestmark = pytest.mark.qemu


@dataclass
class Live:
    service: Service
    server: WbemServer

    def connect(self, user: str) -> pywbem.WBEMConnection:
        return pywbem.WBEMConnection(f"http://127.0.0.1:{self.server.ports['http']}",
                                     (user, PASSWORDS[user]),
                                     default_namespace=names.NAMESPACE, timeout=60)


@pytest.fixture
def live(storage_root: Path, qemu_uri: str) -> Iterator[Live]:
    settings = Settings(state_dir=storage_root / "state", storage_roots=(storage_root,),
                        libvirt_uri=qemu_uri)
    fill_users(UsersFile(settings.users_file))
    service = Service(settings)
    server = WbemServer(service.registry, http_port=0, workers=4,
                        auth=authenticator_from_settings(settings))
    try:
        server.start()
        yield Live(service, server)
    finally:
        server.stop()
        for vs in service.host.list_systems():
            if storage_root.name in vs.name:
                with contextlib.suppress(Exception):
                    service.host.undefine(vs.guid)
        service.close()


def define(conn: pywbem.WBEMConnection, name: str) -> pywbem.CIMInstanceName:
    gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": name})
    out = wbemflow.completed(conn, *wbemflow.invoke(conn, names.VSMS, "DefineVirtualSystem",
                                                    SystemSettingData=gsd.tocimxmlstr()))
    vm: pywbem.CIMInstanceName = out["DefinedSystem"]
    return vm


def test_the_owner_of_a_job_is_the_user_who_started_it(live: Live, storage_root: Path) -> None:
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


def test_an_export_job_names_its_vm_once(live: Live, storage_root: Path) -> None:
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
