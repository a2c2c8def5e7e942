"""The three roles against a real Service on qemu:///system, over CIM-XML with authentication,
and the audit lines of a method call and of its job's outcome."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pywbem

from tests.auth.conftest import PASSWORDS, fill_users
from tests.e2e import wbemflow
from vsms.app import Service
from vsms.auth.setup import audit_from_settings, authenticator_from_settings
from vsms.auth.users import UsersFile
from vsms.cim import names
from vsms.cim.enums import JobState, ReturnCode
from vsms.settings import Settings
from vsms.wbem.server import WbemServer

pytestmark = pytest.mark.qemu
DENIED = ReturnCode.ACCESS_DENIED


@dataclass
class Live:
    service: Service
    server: WbemServer
    settings: Settings

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
                        auth=authenticator_from_settings(settings),
                        audit=audit_from_settings(settings))
    try:
        server.start()
        yield Live(service, server, settings)
    finally:
        server.stop()
        for vs in service.host.list_systems():
            if storage_root.name in vs.name:
                with contextlib.suppress(Exception):
                    service.host.undefine(vs.guid)
        service.close()


def invoke(conn: pywbem.WBEMConnection, target: pywbem.CIMInstanceName | str, method: str,
           **params: Any) -> int:
    return wbemflow.invoke(conn, target, method, **params)[0]


def test_roles_on_the_real_service(live: Live, storage_root: Path) -> None:
    admin, oper, reader = (live.connect(u) for u in ("admin", "oper", "reader"))
    name = f"auth-{storage_root.name}"
    gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": name})
    vm = wbemflow.completed(admin, *wbemflow.invoke(
        admin, names.VSMS, "DefineVirtualSystem", SystemSettingData=gsd))["DefinedSystem"]
    vhd = str(storage_root / "x.vhd")

    # reader: reads only
    assert any(i["ElementName"] == name for i in reader.EnumerateInstances(names.COMPUTER_SYSTEM))
    assert reader.GetInstance(vm)["EnabledState"] == 3
    for target, method, params in (
            (vm, "RequestStateChange", {"RequestedState": pywbem.Uint16(2)}),
            (names.VSMS, "DefineVirtualSystem", {"SystemSettingData": gsd}),
            (names.IMAGE_SERVICE, "GetVirtualHardDiskInfo", {"Path": vhd})):
        assert invoke(reader, target, method, **params) == DENIED, method
    with pytest.raises(pywbem.CIMError) as info:
        reader.DeleteInstance(vm)
    assert info.value.status_code == pywbem.CIM_ERR_ACCESS_DENIED

    # operator: state changes and read-only methods pass authorization ...
    assert invoke(oper, vm, "RequestStateChange",
                  RequestedState=pywbem.Uint16(32768)) == ReturnCode.INVALID_STATE  # off
    assert invoke(oper, names.IMAGE_SERVICE, "GetVirtualHardDiskInfo", Path=vhd) != DENIED
    # ... define, destroy, export, import and disk creation do not
    for target, method, params in (
            (names.VSMS, "DefineVirtualSystem", {"SystemSettingData": gsd}),
            (names.VSMS, "DestroyVirtualSystem", {"ComputerSystem": vm}),
            (names.VSMS, "ExportVirtualSystem", {
                "ComputerSystem": vm, "CopyVmState": True,
                "ExportDirectory": str(storage_root / "exp")}),
            (names.VSMS, "ImportVirtualSystem", {
                "ImportDirectory": str(storage_root / "exp"), "GenerateNewID": True}),
            (names.IMAGE_SERVICE, "CreateDynamicVirtualHardDisk", {
                "Path": vhd, "MaxInternalSize": pywbem.Uint64(2**20)})):
        assert invoke(oper, target, method, **params) == DENIED, method
    with pytest.raises(pywbem.CIMError) as info:
        oper.ModifyInstance(oper.GetInstance(vm))
    assert info.value.status_code == pywbem.CIM_ERR_ACCESS_DENIED
    assert not (storage_root / "exp").exists() and not Path(vhd).exists()
    assert oper.GetInstance(vm)["ElementName"] == name  # still there

    # administrator: destroy is a job; the audit log gets the call and the job's outcome
    rv, out = wbemflow.invoke(admin, names.VSMS, "DestroyVirtualSystem", ComputerSystem=vm)
    assert rv == ReturnCode.JOB_STARTED
    job = wbemflow.wait_job(admin, out["Job"])
    assert job["JobState"] == JobState.COMPLETED
    job_id = job["InstanceID"]
    audit = audit_from_settings(live.settings)
    deadline = time.monotonic() + 15
    while not any(r["event"] == "job" and r["job"] == job_id for r in audit.read()):
        assert time.monotonic() < deadline, audit.read()
        time.sleep(0.1)
    records = audit.read()
    calls = [(r["user"], r["method"], r["return_value"]) for r in records
             if r["event"] == "method"]
    assert ("admin", "DefineVirtualSystem", 0) in calls
    assert ("reader", "RequestStateChange", DENIED) in calls
    assert ("oper", "RequestStateChange", ReturnCode.INVALID_STATE) in calls
    assert ("oper", "ImportVirtualSystem", DENIED) in calls
    assert not any(r.get("method") in ("EnumerateInstances", "GetInstance") for r in records)
    define = next(r for r in records if r.get("method") == "DefineVirtualSystem")
    assert define["arguments"]["SystemSettingData"]["class"] == names.VSGSD
    assert define["arguments"]["SystemSettingData"]["ElementName"] == name
    destroy = next(r for r in records if r.get("method") == "DestroyVirtualSystem"
                   and r["user"] == "admin")
    assert destroy["return_value"] == 4096 and destroy["job"] == job_id
    outcome = next(r for r in records if r["event"] == "job" and r["job"] == job_id)
    assert outcome["job_state"] == JobState.COMPLETED and outcome["error_code"] == 0
    assert (outcome["user"], outcome["method"]) == ("admin", "DestroyVirtualSystem")
