"""Snapshots and per-VM authorization scopes, over CIM-XML with authentication on a real
Service on qemu:///system: a scoped user sees and manages the snapshots of the VMs in her
scopes and cannot tell a snapshot of another VM from a snapshot that does not exist.

Users: ``admin`` (administrator everywhere) and ``alice`` (administrator in scope t1 only).
VMs: A in t1 and B in t2, each with a snapshot the admin took (no disks: the snapshot is of
the configuration, which is all the scope rules look at)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import pywbem

from tests.conftest import QEMU_URI, fresh_dir
from tests.e2e import wbemflow
from vsms.app import Service
from vsms.auth.policy import Role
from vsms.auth.setup import audit_from_settings, authenticator_from_settings
from vsms.auth.users import UsersFile
from vsms.cim import names
from vsms.cim.enums import ReturnCode
from vsms.model.vm import new_guid
from vsms.settings import Settings
from vsms.wbem.server import WbemServer

pytestmark = pytest.mark.qemu
PASSWORD = "scoped-pass-123"
DENIED = int(ReturnCode.ACCESS_DENIED)


@dataclass
class Scoped:
    server: WbemServer
    a: pywbem.CIMInstanceName
    b: pywbem.CIMInstanceName
    snap_a: pywbem.CIMInstanceName
    snap_b: pywbem.CIMInstanceName

    def connect(self, user: str) -> pywbem.WBEMConnection:
        return pywbem.WBEMConnection(f"http://127.0.0.1:{self.server.ports['http']}",
                                     (user, PASSWORD), default_namespace=names.NAMESPACE,
                                     timeout=60)


def _define(conn: pywbem.WBEMConnection, name: str, scope: str) -> pywbem.CIMInstanceName:
    gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": name,
                                                       "ScopeOfResidence": scope})
    out = wbemflow.completed(conn, *wbemflow.invoke(conn, names.VSMS, "DefineVirtualSystem",
                                                    SystemSettingData=gsd))
    vm: pywbem.CIMInstanceName = out["DefinedSystem"]
    return vm


def _snapshot(conn: pywbem.WBEMConnection, vm: pywbem.CIMInstanceName
              ) -> pywbem.CIMInstanceName:
    out = wbemflow.completed(conn, *wbemflow.invoke(conn, names.VSMS,
                                                    "CreateVirtualSystemSnapshot",
                                                    SourceSystem=vm))
    path: pywbem.CIMInstanceName = out["SnapshotSettingData"]
    path.namespace = names.NAMESPACE
    return path


@pytest.fixture(scope="module")
def scoped() -> Iterator[Scoped]:
    root = fresh_dir()
    settings = Settings(state_dir=root / "state", storage_roots=(root,), libvirt_uri=QEMU_URI)
    users = UsersFile(settings.users_file)
    users.add("admin", Role.ADMINISTRATOR, PASSWORD)
    users.add("alice", Role.ADMINISTRATOR, PASSWORD, scope="t1")
    service = Service(settings)
    server = WbemServer(service.registry, http_port=0, workers=2,
                        auth=authenticator_from_settings(settings),
                        audit=audit_from_settings(settings))
    server.start()
    try:
        admin = pywbem.WBEMConnection(f"http://127.0.0.1:{server.ports['http']}",
                                      ("admin", PASSWORD), default_namespace=names.NAMESPACE)
        a = _define(admin, f"snapscope-a-{root.name}", "t1")
        b = _define(admin, f"snapscope-b-{root.name}", "t2")
        yield Scoped(server, a, b, _snapshot(admin, a), _snapshot(admin, b))
    finally:
        server.stop()
        for vs in service.host.list_systems():
            if root.name in vs.name:
                with contextlib.suppress(Exception):
                    service.host.undefine(vs.guid)
        service.close()
        shutil.rmtree(root, ignore_errors=True)


def _ids(found: list[pywbem.CIMInstance]) -> set[str]:
    return {str(i.path["InstanceID"]) for i in found}


def test_scoped_user_sees_and_manages_only_her_snapshots(scoped: Scoped) -> None:
    alice, admin = scoped.connect("alice"), scoped.connect("admin")
    snap_a, snap_b = scoped.snap_a, scoped.snap_b
    ia, ib = str(snap_a["InstanceID"]), str(snap_b["InstanceID"])

    # settings: A's snapshot and its RASDs are hers, B's are not there for her
    vssds = _ids(alice.EnumerateInstances(names.VSSD))
    assert ia in vssds and ib not in vssds
    assert {ia, ib} <= _ids(admin.EnumerateInstances(names.VSSD))
    assert alice.GetInstance(snap_a)["SettingType"] == 5
    with pytest.raises(pywbem.CIMError) as err:
        alice.GetInstance(snap_b)
    assert err.value.status_code == pywbem.CIM_ERR_NOT_FOUND
    parts = alice.Associators(snap_a, AssocClass=names.VSSD_COMPONENT)
    assert parts and all(str(p["InstanceID"]).startswith(ia + "\\") for p in parts)
    assert alice.GetInstance(parts[0].path)["InstanceID"] == parts[0]["InstanceID"]
    rasds = _ids(alice.EnumerateInstances(names.RASD))
    assert not any(r.startswith(ib) for r in rasds)
    assert any(r.startswith(ib) for r in _ids(admin.EnumerateInstances(names.RASD)))
    with pytest.raises(pywbem.CIMError) as err:
        alice.Associators(snap_b, AssocClass=names.VSSD_COMPONENT)
    assert err.value.status_code == pywbem.CIM_ERR_NOT_FOUND

    # the tree's associations: hers only
    previous = alice.EnumerateInstances("Msvm_PreviousSettingData")
    assert [str(p["SettingData"]["InstanceID"]) for p in previous] == [ia]
    assert len(admin.EnumerateInstances("Msvm_PreviousSettingData")) >= 2
    assert [s.path["InstanceID"] for s in alice.Associators(
        scoped.a, AssocClass="Msvm_PreviousSettingData")] == [ia]
    elements = alice.References(snap_a, ResultClass=names.ELEMENT_SETTING_DATA)
    assert [str(e["ManagedElement"]["Name"]) for e in elements] == [scoped.a["Name"]]

    # methods: B's snapshot answers as one that does not exist (32769, nothing done)
    ghost = pywbem.CIMInstanceName(names.VSSD, {"InstanceID": f"Microsoft:{new_guid()}"},
                                   namespace=names.NAMESPACE)
    for params in ({"ComputerSystem": scoped.a, "SnapshotSettingData": snap_b},
                   {"ComputerSystem": scoped.a, "SnapshotSettingData": ghost}):
        assert wbemflow.invoke(alice, names.VSMS, "ApplyVirtualSystemSnapshotEx",
                               **params)[0] == DENIED
    for method in ("RemoveVirtualSystemSnapshot", "RemoveVirtualSystemSnapshotTree"):
        for target in (snap_b, ghost):
            assert wbemflow.invoke(alice, names.VSMS, method,
                                   SnapshotSettingData=target)[0] == DENIED, (method, target)
    assert admin.GetInstance(snap_b)["SettingType"] == 5  # still there

    # her own: applied (v1 and Ex) and removed
    rv, _ = wbemflow.invoke(alice, names.VSMS, "ApplyVirtualSystemSnapshot",
                            ComputerSystem=scoped.a, SnapshotSettingData=snap_a)
    assert rv == ReturnCode.COMPLETED
    wbemflow.completed(alice, *wbemflow.invoke(alice, names.VSMS, "ApplyVirtualSystemSnapshotEx",
                                               ComputerSystem=scoped.a,
                                               SnapshotSettingData=snap_a))
    assert [s.path["InstanceID"] for s in alice.Associators(
        scoped.a, AssocClass="Msvm_LastAppliedSettingData")] == [ia]
    wbemflow.completed(alice, *wbemflow.invoke(alice, names.VSMS, "RemoveVirtualSystemSnapshot",
                                               SnapshotSettingData=snap_a))
    assert ia not in _ids(alice.EnumerateInstances(names.VSSD))
    # now gone, it answers as B's does
    assert wbemflow.invoke(alice, names.VSMS, "RemoveVirtualSystemSnapshot",
                           SnapshotSettingData=snap_a)[0] == DENIED
