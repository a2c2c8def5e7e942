"""Snapshots and per-VM authorization scopes, over CIM-XML with authentication on a real
Service on qemu:///system: a scoped user sees and manages the snapshots of the VMs in her
scopes and cannot tell a snapshot of another VM from a snapshot that does not exist.

Users: ``admin`` (administrator everywhere) and ``alice`` (administrator in scope t1 only).
VMs: A in t1 and B in t2, each with a snapshot the admin took (no disks: the snapshot is of
the configuration, which is all the scope rules look at)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import pywbem

from tests.authserved import AuthServed, auth_served, define_in_scope
from tests.e2e import wbemflow
from vsms.auth.policy import Role
from vsms.cim import names
from vsms.cim.enums import ReturnCode
from vsms.model.vm import new_guid

pytestmark = pytest.mark.qemu
PASSWORD = "scoped-pass-123"
DENIED = int(ReturnCode.ACCESS_DENIED)


@dataclass
class Scoped:
    served: AuthServed
    a: pywbem.CIMInstanceName
    b: pywbem.CIMInstanceName
    snap_a: pywbem.CIMInstanceName
    snap_b: pywbem.CIMInstanceName

    def connect(self, user: str) -> pywbem.WBEMConnection:
        return self.served.connect(user, timeout=60)


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
    users = [("admin", Role.ADMINISTRATOR, None), ("alice", Role.ADMINISTRATOR, "t1")]
    with auth_served(PASSWORD, users, workers=2) as served:
        try:
            admin = served.connect("admin")
            a = define_in_scope(admin, f"snapscope-a-{served.root.name}", "t1")
            b = define_in_scope(admin, f"snapscope-b-{served.root.name}", "t2")
            yield Scoped(served, a, b, _snapshot(admin, a), _snapshot(admin, b))
        finally:
            served.remove_vms()


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
