"""A scoped user and the switches, over CIM-XML with authentication (docs/security.md, *Per-VM
scopes*; docs/switches.md, *Tenancy*): ``alice``, administrator in scope t1 only, sees every
switch and port (switches are host-wide) but only her VMs' Msvm_VmLANEndpoints and
Msvm_ActiveConnections, connects her VM's adapter, and cannot connect another scope's VM nor
change the switches themselves. Nothing is started."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import pywbem

from tests.authserved import auth_served
from tests.e2e import wbemflow
from tests.switches.conftest import virsh
from vsms.auth.policy import Role
from vsms.cim import names
from vsms.cim.enums import ReturnCode
from vsms.mapping import switch_paths as sp

pytestmark = pytest.mark.qemu
PASSWORD = "scoped-switch-123"
DENIED = int(ReturnCode.ACCESS_DENIED)


@dataclass
class Scoped:
    admin: pywbem.WBEMConnection
    alice: pywbem.WBEMConnection
    token: str


@pytest.fixture(scope="module")
def scoped() -> Iterator[Scoped]:
    users = [("admin", Role.ADMINISTRATOR, None), ("alice", Role.ADMINISTRATOR, "t1")]
    with auth_served(PASSWORD, users) as served:
        try:
            yield Scoped(served.connect("admin", timeout=60), served.connect("alice", timeout=60),
                         served.root.name)
        finally:
            served.remove_vms()
            for sw in served.service.host.networks.switches():
                if served.root.name in sw.friendly:
                    virsh("net-undefine", sw.network, check=False)  # first: see conftest.py
                    virsh("net-destroy", sw.network, check=False)


def _call(conn: pywbem.WBEMConnection, method: str, **params: object
          ) -> tuple[int, dict[str, object]]:
    return wbemflow.invoke(conn, sp.SERVICE, method, **params)


def _ok(conn: pywbem.WBEMConnection, method: str, **params: object) -> dict[str, object]:
    rv, out = _call(conn, method, **params)
    assert rv == 0, (method, rv, out)
    return out


def _port(conn: pywbem.WBEMConnection, switch: object, label: str) -> pywbem.CIMInstanceName:
    out = _ok(conn, "CreateSwitchPort", VirtualSwitch=switch,
              Name=f"{label}-{uuid.uuid4().hex[:8]}", FriendlyName=label, ScopeOfResidence="")
    port = out["CreatedSwitchPort"]
    assert isinstance(port, pywbem.CIMInstanceName)
    return port


def _vm(conn: pywbem.WBEMConnection, name: str, scope: str,
        port: pywbem.CIMInstanceName | None) -> pywbem.CIMInstanceName:
    gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": name,
                                                       "ScopeOfResidence": scope})
    nic = pywbem.CIMInstance(names.SYNTHETIC_NIC_SD, properties={
        "ResourceType": pywbem.Uint16(10), "ResourceSubType": "Microsoft Synthetic Ethernet Port",
        "Connection": pywbem.CIMProperty(
            "Connection", [str(port.to_wbem_uri())] if port is not None else None,
            type="string", is_array=True)})
    out = wbemflow.completed(conn, *wbemflow.invoke(
        conn, names.VSMS, "DefineVirtualSystem", SystemSettingData=gsd,
        ResourceSettingData=[nic.tocimxmlstr()]))
    vm: pywbem.CIMInstanceName = out["DefinedSystem"]
    return vm


def _guid(vm: pywbem.CIMInstanceName) -> str:
    return str(vm["Name"]).upper()


def _endpoint(conn: pywbem.WBEMConnection, vm: pywbem.CIMInstanceName) -> pywbem.CIMInstanceName:
    (ep,) = [e.path for e in conn.EnumerateInstances(sp.VM_ENDPOINT)
             if str(e["SystemName"]).upper() == _guid(vm)]
    return ep


def test_a_scoped_user_sees_switches_but_only_her_vms_connections(scoped: Scoped) -> None:
    admin, alice = scoped.admin, scoped.alice
    out = _ok(admin, "CreateSwitch", Name=str(uuid.uuid4()).upper(),
              FriendlyName=f"scoped-{scoped.token}", NumLearnableAddresses=pywbem.Uint32(64),
              ScopeOfResidence="")
    switch = out["CreatedVirtualSwitch"]
    assert isinstance(switch, pywbem.CIMInstanceName)
    port_a, port_b = _port(admin, switch, "pa"), _port(admin, switch, "pb")
    vm_a = _vm(admin, f"sw-a-{scoped.token}", "t1", port_a)
    vm_b = _vm(admin, f"sw-b-{scoped.token}", "t2", port_b)
    vm_a2 = _vm(admin, f"sw-a2-{scoped.token}", "t1", None)

    # switches and ports are host-wide: she sees them all
    assert switch["Name"] in {s["Name"] for s in alice.EnumerateInstances(sp.SWITCH)}
    ports = {p["Name"] for p in alice.EnumerateInstances(sp.PORT)
             if p["SystemName"] == switch["Name"]}
    assert {port_a["Name"], port_b["Name"]} <= ports
    assert alice.GetInstance(port_b)["Name"] == port_b["Name"]
    # a port another scope's VM holds does not tell that VM's name (once the switch's record
    # has dropped it, at its next write: here the next CreateSwitchPort)
    _port(admin, switch, "compact")
    assert "sw-b-" not in str(alice.GetInstance(port_b)["ElementName"])
    # the VMs' endpoints and connections: hers only
    mine = {str(e["SystemName"]).upper() for e in alice.EnumerateInstances(sp.VM_ENDPOINT)}
    assert _guid(vm_a) in mine and _guid(vm_a2) in mine and _guid(vm_b) not in mine
    connections = alice.EnumerateInstances(sp.ACTIVE_CONNECTION)
    dependents = {str(c["Dependent"]["SystemName"]).upper() for c in connections
                  if c["Dependent"].classname == sp.VM_ENDPOINT}
    assert _guid(vm_a) in dependents and _guid(vm_b) not in dependents
    assert alice.Associators(port_b, AssocClass=sp.ACTIVE_CONNECTION) == []
    (a_ep,) = alice.Associators(port_a, AssocClass=sp.ACTIVE_CONNECTION)
    assert str(a_ep["SystemName"]).upper() == _guid(vm_a)

    # she connects her own VM's adapter to a free port (the administrator made it) ...
    free = _port(admin, switch, "free")
    a2_ep = _endpoint(alice, vm_a2)
    out = _ok(alice, "ConnectSwitchPort", SwitchPort=free, LANEndpoint=a2_ep)
    made = out["ActiveConnection"]
    assert isinstance(made, pywbem.CIMInstanceName)
    assert str(made["Dependent"]["SystemName"]).upper() == _guid(vm_a2)
    # DisconnectSwitchPort names a port, not a VM: it needs the role globally (the port may
    # hold another scope's VM); she takes her adapter off with ModifyVirtualSystemResources
    rv, _ = _call(alice, "DisconnectSwitchPort", SwitchPort=port_b)
    assert rv == DENIED
    (rasd,) = [r for r in wbemflow.settings_of(alice, vm_a2) if r["ResourceType"] == 10]
    rasd["Connection"] = [""]  # empty: not connected (NULL would keep the connection)
    wbemflow.modify(alice, vm_a2, rasd)
    assert alice.Associators(free, AssocClass=sp.ACTIVE_CONNECTION) == []
    # ... but not another scope's VM (32769, as for a VM that does not exist), and B stays
    b_ep = _endpoint(admin, vm_b)
    rv, _ = _call(alice, "ConnectSwitchPort", SwitchPort=free, LANEndpoint=b_ep)
    assert rv == DENIED
    (b_conn,) = admin.Associators(port_b, AssocClass=sp.ACTIVE_CONNECTION)
    assert str(b_conn["SystemName"]).upper() == _guid(vm_b)
    assert admin.Associators(free, AssocClass=sp.ACTIVE_CONNECTION) == []
    # changing the switches themselves needs the administrator role globally
    rv, _ = _call(alice, "CreateSwitchPort", VirtualSwitch=switch, Name="alice-port",
                  FriendlyName="x", ScopeOfResidence="")
    assert rv == DENIED
    rv, _ = _call(alice, "DeleteSwitch", VirtualSwitch=switch)
    assert rv == DENIED
    assert switch["Name"] in {s["Name"] for s in admin.EnumerateInstances(sp.SWITCH)}
