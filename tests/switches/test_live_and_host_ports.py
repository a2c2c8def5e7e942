"""Adapters of a running VM change switches live (libvirt interface update), and the host-side
ports: an internal port gives the host an IPv6 link-local address on the switch's bridge and
nothing else; an external switch is bound to a host interface (a dummy interface the test
makes), and a missing interface or the host's own management interface is refused."""

from __future__ import annotations

import json
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import pywbem

from tests.e2e import wbemflow
from tests.switches.conftest import Net, domain_xml, guid_of, net_xml, virsh
from vsms.cim.enums import JobState, ReturnCode
from vsms.mapping import switch_paths as sp

pytestmark = pytest.mark.qemu

DUMMY = "vsmsdummy0"


def live_nic(guid: str) -> ET.Element:
    """The running VM's first adapter."""
    return live_nics(guid)["ua-vsms-nic0"]


def network_of(iface: ET.Element) -> str:
    src = iface.find("source")
    return src.get("network", "") if src is not None else ""


def link_state(iface: ET.Element) -> str:
    link = iface.find("link")
    return link.get("state", "up") if link is not None else "up"


def live_nics(guid: str) -> dict[str, ET.Element]:
    """The running VM's adapters by alias."""
    return {str(i.find("alias").get("name")): i  # type: ignore[union-attr]
            for i in ET.fromstring(domain_xml(guid, inactive=False)).findall("devices/interface")}


def stored_nics(guid: str) -> list[ET.Element]:
    return ET.fromstring(domain_xml(guid)).findall("devices/interface")


def test_running_vm_moves_between_switches(net: Net) -> None:
    p_switch, p_name = net.create_switch("live-P")
    q_switch, q_name = net.create_switch("live-Q")
    p_port, q_port = net.create_port(p_switch, "lp"), net.create_port(q_switch, "lq")
    vm = net.vm("live")
    guid = guid_of(vm)
    net.add_nic(vm, p_port)
    net.add_nic(vm, None)  # a second adapter, unconnected when the VM starts
    wbemflow.request_state(net.conn, vm, 2)
    try:
        # the unconnected adapter is connected while the VM runs: libvirt cannot change a live
        # adapter's type, so an adapter with its MAC on the switch is hot-plugged in its place
        spare = [e for e in net.conn.EnumerateInstances(sp.VM_ENDPOINT)
                 if str(e["SystemName"]).upper() == guid.upper() and not e["Connected"]]
        assert len(spare) == 1, spare
        # a switch an administrator stopped (virsh net-destroy): no running VM joins it
        r_switch, r_name = net.create_switch("live-R")
        r_port = net.create_port(r_switch, "lr")
        virsh("net-destroy", r_name)
        rv, out = net.call("ConnectSwitchPort", SwitchPort=r_port, LANEndpoint=spare[0].path)
        assert rv == ReturnCode.INVALID_STATE, out
        assert f"virsh net-start {r_name}" in out["ErrorDescription"]
        assert stored_nics(guid)[1].get("type") == "user"
        q2_port = net.create_port(q_switch, "lq2")
        net.ok("ConnectSwitchPort", SwitchPort=q2_port, LANEndpoint=spare[0].path)
        live = live_nics(guid)
        plugged = live["ua-vsms-nic1-live"]
        assert (plugged.get("type"), network_of(plugged), link_state(plugged)) == (
            "network", q_name, "up")
        mac = plugged.find("mac").get("address")  # type: ignore[union-attr]
        assert stored_nics(guid)[1].find("mac").get("address") == mac  # type: ignore[union-attr]
        assert network_of(stored_nics(guid)[1]) == q_name
        # SeaBIOS lets nothing go: the old (type user) adapter stays, link down
        old = live.get("ua-vsms-nic1")
        assert old is None or (old.get("type"), link_state(old)) == ("user", "down")
        (conn_ep,) = net.conn.Associators(q2_port, AssocClass=sp.ACTIVE_CONNECTION)
        assert conn_ep.path["Name"] == spare[0].path["Name"]
        # disconnected live: back to "not connected" (link down; stored unconnected)
        net.ok("DisconnectSwitchPort", SwitchPort=q2_port)
        assert link_state(live_nics(guid)["ua-vsms-nic1-live"]) == "down"
        assert stored_nics(guid)[1].get("type") == "user"
        # and connected again with ModifyVirtualSystemResources: the plugged adapter moves
        (rasd2,) = [r for r in wbemflow.settings_of(net.conn, vm) if r["ResourceType"] == 10
                    and str(p_port["Name"]) not in str(r["Connection"])]
        rasd2["Connection"] = [str(q2_port.to_wbem_uri())]
        wbemflow.modify(net.conn, vm, rasd2)
        plugged = live_nics(guid)["ua-vsms-nic1-live"]
        assert (network_of(plugged), link_state(plugged)) == (q_name, "up")
        assert network_of(stored_nics(guid)[1]) == q_name
        assert network_of(live_nic(guid)) == p_name
        (endpoint,) = net.conn.Associators(p_port, AssocClass=sp.ACTIVE_CONNECTION)
        # disconnect while running: the live adapter's link goes down, the definition
        # has it unconnected
        net.ok("DisconnectSwitchPort", SwitchPort=p_port)
        assert link_state(live_nic(guid)) == "down"
        assert stored_nics(guid)[0].get("type") == "user"
        # connect to a port of another switch while running: moved there, link up
        out = net.ok("ConnectSwitchPort", SwitchPort=q_port, LANEndpoint=endpoint.path)
        assert out["ActiveConnection"]["Dependent"]["Name"] == endpoint.path["Name"]
        iface = live_nic(guid)
        assert (network_of(iface), link_state(iface)) == (q_name, "up")
        assert network_of(stored_nics(guid)[0]) == q_name
        # ModifyVirtualSystemResources with another port while running: moved back to P
        (rasd,) = [r for r in wbemflow.settings_of(net.conn, vm) if r["ResourceType"] == 10
                   and str(q_port["Name"]) in str(r["Connection"])]
        rasd["Connection"] = [str(p_port.to_wbem_uri())]
        wbemflow.modify(net.conn, vm, rasd)
        assert network_of(live_nic(guid)) == p_name
        # the switch in use by a running VM is not deleted
        rv, _ = net.call("DeleteSwitch", VirtualSwitch=p_switch)
        assert rv == ReturnCode.SYSTEM_IN_USE
    finally:
        wbemflow.request_state(net.conn, vm, 3)


@pytest.fixture
def dummy() -> Iterator[str]:
    """A dummy interface (a veth pair where the kernel has no dummy driver): it leads nowhere."""
    made = subprocess.run(["ip", "link", "add", DUMMY, "type", "dummy"], check=False,
                          timeout=10, capture_output=True)
    if made.returncode != 0:
        subprocess.run(["ip", "link", "add", DUMMY, "type", "veth", "peer", "name",
                        "vsmsdummy1"], check=True, timeout=10)
    try:
        yield DUMMY
    finally:
        subprocess.run(["ip", "link", "del", DUMMY], check=False, timeout=10)


def _external(net: Net, ifname: str) -> pywbem.CIMInstance:
    (port,) = [p for p in net.conn.EnumerateInstances(sp.EXTERNAL_PORT)
               if p["DeviceID"] == ifname]
    return port


def _addresses(ifname: str) -> list[dict[str, object]]:
    run = subprocess.run(["ip", "-j", "addr", "show", "dev", ifname], capture_output=True,
                         text=True, check=True, timeout=10)
    return [a for link in json.loads(run.stdout) for a in link["addr_info"]]


def _default_route_interface() -> str:
    for line in Path("/proc/net/route").read_text().splitlines()[1:]:
        cols = line.split()
        if cols[1] == "00000000":
            return cols[0]
    return ""


def test_external_switch_on_a_dummy_interface(net: Net, dummy: str) -> None:
    switch, name = net.create_switch("ext")
    port = net.create_port(switch, "uplink")
    ext = _external(net, dummy)
    assert ext["IsBound"] is False
    # a missing interface is refused, naming it
    missing = sp.host_port_path(sp.EXTERNAL_PORT, str(ext.path["SystemName"]), "vsmsnone0")
    rv, out = net.call("BindExternalEthernetPort", ExternalEthernetPort=missing)
    assert rv == ReturnCode.INVALID_PARAMETER and "vsmsnone0" in out["ErrorDescription"]
    # the interface of the host's default route is refused with the reason
    mgmt = _default_route_interface()
    if mgmt:
        rv, out = net.call("BindExternalEthernetPort", ExternalEthernetPort=sp.host_port_path(
            sp.EXTERNAL_PORT, str(ext.path["SystemName"]), mgmt))
        assert rv == ReturnCode.INVALID_PARAMETER and "default route" in out["ErrorDescription"]
    # connecting before binding is refused
    endpoint = sp.host_endpoint_path(str(ext.path["SystemName"]), dummy)
    rv, out = net.call("ConnectSwitchPort", SwitchPort=port, LANEndpoint=endpoint)
    assert rv == ReturnCode.INVALID_STATE and "not bound" in out["ErrorDescription"]
    net.ok("BindExternalEthernetPort", ExternalEthernetPort=ext.path)
    assert _external(net, dummy)["IsBound"] is True
    net.ok("ConnectSwitchPort", SwitchPort=port, LANEndpoint=endpoint)
    root = ET.fromstring(net_xml(name))
    fwd = root.find("forward")
    assert fwd is not None and fwd.get("mode") == "bridge"
    bridge = root.find("bridge")  # vsms's bridge, the interface its port
    assert bridge is not None and fwd.find("interface") is None
    assert (Path("/sys/class/net") / dummy / "master").resolve().name == bridge.get("name")
    assert net.conn.GetInstance(switch)["Description"] == "Virtual switch (external)"
    (connected,) = net.conn.Associators(port, AssocClass=sp.ACTIVE_CONNECTION)
    assert connected.classname == sp.SWITCH_ENDPOINT
    (adapter,) = net.conn.Associators(connected.path, AssocClass=sp.GLOBAL_SAP)
    assert adapter["DeviceID"] == dummy
    # unbinding a connected interface is refused; disconnect, unbind
    rv, _ = net.call("UnbindExternalEthernetPort", ExternalEthernetPort=ext.path)
    assert rv == ReturnCode.SYSTEM_IN_USE
    net.ok("DisconnectSwitchPort", SwitchPort=port)
    assert ET.fromstring(net_xml(name)).find("forward") is None
    net.ok("UnbindExternalEthernetPort", ExternalEthernetPort=ext.path)
    assert _external(net, dummy)["IsBound"] is False
    # SetupSwitch / TeardownSwitch do the same as jobs, with an internal port
    ext_port, int_port = net.create_port(switch, "sx"), net.create_port(switch, "si")
    job = wbemflow.run_job(net.conn, sp.SERVICE, "SetupSwitch", ExternalSwitchPort=ext_port,
                           InternalSwitchPort=int_port, ExternalEthernetPort=ext.path,
                           InternalEthernetPortName=f"setup-{net.token}",
                           InternalEthernetPortFriendlyName="setup")
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    sw = net.served.service.host.networks.get(name)
    assert sw is not None and sw.external == dummy and sw.internal is not None
    assert _external(net, dummy)["IsBound"] is True
    internal = sp.host_port_path(sp.INTERNAL_PORT, str(ext.path["SystemName"]),
                                 sp.internal_device_id(f"setup-{net.token}"))
    job = wbemflow.run_job(net.conn, sp.SERVICE, "TeardownSwitch",
                           ExternalEthernetPort=ext.path, InternalEthernetPort=internal)
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    assert _external(net, dummy)["IsBound"] is False
    assert ET.fromstring(net_xml(name)).find("forward") is None
    net.ok("DeleteSwitch", VirtualSwitch=switch)


def test_internal_port_gives_the_host_a_link_local_address_only(net: Net) -> None:
    switch, name = net.create_switch("int")
    port = net.create_port(switch, "host")
    out = net.ok("CreateInternalEthernetPortDynamicMac", Name=f"int-{net.token}",
                 FriendlyName="host port")
    internal = net.conn.GetInstance(out["CreatedInternalEthernetPort"])
    assert str(internal["PermanentAddress"]).startswith("00155D")
    rv, _ = net.call("CreateInternalEthernetPort", Name=f"int-{net.token}", FriendlyName="x",
                     MacAddress="00155D000001")
    assert rv == ReturnCode.SYSTEM_IN_USE
    endpoint = sp.host_endpoint_path(str(internal.path["SystemName"]), internal["DeviceID"])
    net.ok("ConnectSwitchPort", SwitchPort=port, LANEndpoint=endpoint)
    root = ET.fromstring(net_xml(name))
    assert root.get("ipv6") == "yes" and root.find("ip") is None and root.find("forward") is None
    bridge = str(root.find("bridge").get("name"))  # type: ignore[union-attr]
    ipv6_off = Path("/proc/sys/net/ipv6/conf") / bridge / "disable_ipv6"
    assert ipv6_off.read_text().strip() == "0"
    # the network restarted behind vsms's back (libvirt turns IPv6 off again at each start):
    # the lifecycle event makes vsms turn it on again, within moments (a short deadline: any
    # vsms Service that starts on this host re-applies it to every switch, in time)
    virsh("net-destroy", name)
    virsh("net-start", name)
    deadline = time.monotonic() + 2
    while ipv6_off.read_text().strip() != "0" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ipv6_off.read_text().strip() == "0"
    # a running VM on the switch gives the bridge a carrier: the host then has an IPv6
    # link-local address on it and nothing else
    vm = net.vm("int")
    net.add_nic(vm, net.create_port(switch, "guest"))
    wbemflow.request_state(net.conn, vm, 2)
    try:
        deadline = time.monotonic() + 20
        while not (addrs := _addresses(bridge)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert addrs and all(a["family"] == "inet6" and a["scope"] == "link"
                             and str(a["local"]).startswith("fe80:") for a in addrs), addrs
    finally:
        wbemflow.request_state(net.conn, vm, 3)
    assert virsh("net-info", name)  # still defined and listed
    # deleting the internal port takes the host's address away again
    net.ok("DeleteInternalEthernetPort", InternalEthernetPort=internal.path)
    assert ET.fromstring(net_xml(name)).get("ipv6") is None
    assert _addresses(bridge) == []
