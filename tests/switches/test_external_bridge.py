"""An external switch is a Linux bridge vsms makes with the host interface as its port (a veth
pair the test makes, its other end in a network namespace of its own): binding enslaves the
interface and records its prior state, a running VM's tap is on the bridge, an internal port
gives the host an IPv6 link-local address on it; unbinding and deleting restore the interface
and remove the bridge; an injected crash between steps and a bridge left without its record
are repaired at the next start. No IPv4 address anywhere."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import pywbem
from pypsrp.wsman import SelectorSet, WSMan

from tests.e2e import wbemflow
from tests.switches.conftest import Net, domain_xml, guid_of, net_xml, virsh
from tests.switches.test_wsman_switch import _invoke
from tests.wsman.conftest import WMI, epr_into
from vsms.cim.enums import ReturnCode
from vsms.errors import InvalidState
from vsms.mapping import switch_paths as sp
from vsms.operations import switchbridge
from vsms.operations.switches import SwitchOps

pytestmark = pytest.mark.qemu

SYS = Path("/sys/class/net")


def ip(*args: str) -> str:
    run = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    assert run.returncode == 0, (args, run.stderr)
    return run.stdout


def state(ifname: str) -> tuple[str, bool, int]:
    """(master, up, MTU) of a host interface."""
    (info,) = json.loads(ip("-j", "link", "show", "dev", ifname))
    return str(info.get("master", "")), "UP" in info["flags"], int(info["mtu"])


@pytest.fixture
def veth() -> Iterator[str]:
    """A veth pair: one end here (down, MTU 1400), the other in a namespace of its own."""
    tag = f"{os.getpid() % 100000}"
    ns, here = f"vsmsxbr{tag}", f"vxb{tag}"
    ip("netns", "add", ns)
    try:
        ip("link", "add", here, "mtu", "1400", "type", "veth", "peer", "name", "peer0",
           "netns", ns)
        ip("-n", ns, "link", "set", "peer0", "up")
        yield here
    finally:
        subprocess.run(["ip", "link", "del", here], check=False, timeout=10,
                       capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], check=False, timeout=10)


def service_ops(net: Net) -> SwitchOps:
    """The switch operations of the served service (its state directory, its host)."""
    service = net.served.service
    return SwitchOps(service.host, service.settings.state_dir,
                     socket.gethostname().split(".")[0].upper() or "LOCALHOST")


def _external(net: Net, ifname: str) -> pywbem.CIMInstanceName:
    return sp.host_port_path(sp.EXTERNAL_PORT, service_ops(net).hostname, ifname)


def test_external_switch_is_a_bridge_owning_the_interface(net: Net, veth: str) -> None:
    ops = service_ops(net)
    switch, name = net.create_switch("xbr")
    uplink, host, guest = (net.create_port(switch, x) for x in ("uplink", "host", "guest"))
    before = state(veth)
    assert before == ("", False, 1400)
    ext = _external(net, veth)
    net.ok("BindExternalEthernetPort", ExternalEthernetPort=ext)
    net.ok("ConnectSwitchPort", SwitchPort=uplink,
           LANEndpoint=sp.host_endpoint_path(ops.hostname, veth))
    root = ET.fromstring(net_xml(name))
    fwd, br = root.find("forward"), root.find("bridge")
    assert fwd is not None and fwd.get("mode") == "bridge" and fwd.find("interface") is None
    assert br is not None
    bridge = str(br.get("name"))
    assert state(veth)[0] == bridge and state(veth)[1]
    (rec,) = [r for r in ops.bridges.records() if r.ifname == veth]
    assert (rec.bridge, rec.step, rec.master, rec.up, rec.mtu) == (bridge, "bound", "", False,
                                                                    1400)
    # an internal port on the external switch: the host's side of the bridge, link-local only
    out = net.ok("CreateInternalEthernetPortDynamicMac", Name=f"xbr-{net.token}",
                 FriendlyName="host")
    internal = out["CreatedInternalEthernetPort"]
    net.ok("ConnectSwitchPort", SwitchPort=host,
           LANEndpoint=sp.host_endpoint_path(ops.hostname, str(internal["DeviceID"])))
    assert state(veth)[0] == bridge
    # a running VM's tap is on the bridge
    vm = net.vm("xbr")
    net.add_nic(vm, guest)
    wbemflow.request_state(net.conn, vm, 2)
    try:
        (iface,) = ET.fromstring(domain_xml(guid_of(vm), inactive=False)).findall(
            "devices/interface")
        tap = str(iface.find("target").get("dev"))  # type: ignore[union-attr]
        assert (SYS / tap / "master").resolve().name == bridge
        deadline = time.monotonic() + 20
        addrs: list[dict[str, object]] = []
        while not addrs and time.monotonic() < deadline:
            (info,) = json.loads(ip("-j", "addr", "show", "dev", bridge))
            addrs = info["addr_info"]
            time.sleep(0.2)
        assert addrs and all(a["family"] == "inet6" and a["scope"] == "link" for a in addrs)
        assert str(info["address"]).replace(":", "").upper() == str(
            net.conn.GetInstance(internal)["PermanentAddress"])  # the internal port's MAC
        # the switch is in use: disconnecting the interface while a VM runs is refused
        rv, _ = net.call("DisconnectSwitchPort", SwitchPort=uplink)
        assert rv != 0 and state(veth)[0] == bridge
    finally:
        wbemflow.request_state(net.conn, vm, 3)
    net.ok("DeleteInternalEthernetPort", InternalEthernetPort=internal)
    # unbind: released, prior state back, no bridge left, the network isolated again
    net.ok("DisconnectSwitchPort", SwitchPort=uplink)
    assert state(veth) == before
    # vsms's bridge is gone: libvirt's isolated bridge of the same name took its place
    again = switchbridge.link(bridge)
    assert again is not None and again.get("ifalias") != ops.bridges.mark
    assert ET.fromstring(net_xml(name)).find("forward") is None
    assert not [r for r in ops.bridges.records() if r.ifname == veth]
    # bound again, then the switch deleted (its VM's adapter taken off first)
    net.ok("ConnectSwitchPort", SwitchPort=uplink,
           LANEndpoint=sp.host_endpoint_path(ops.hostname, veth))
    assert state(veth)[0] == bridge
    net.ok("DisconnectSwitchPort", SwitchPort=guest)
    net.ok("DeleteSwitch", VirtualSwitch=switch)
    assert state(veth) == before and not (SYS / bridge).exists()
    net.ok("UnbindExternalEthernetPort", ExternalEthernetPort=ext)


class Crash(BaseException):
    """An injected crash: nothing after it runs (no VsmsError handler catches it)."""


def test_crash_between_steps_and_stray_bridges_are_repaired(
        net: Net, veth: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    service = net.served.service
    ops = SwitchOps(service.host, tmp_path, service_ops(net).hostname)
    switch, name = net.create_switch("xbr-crash")
    uplink = net.create_port(switch, "uplink")
    before = state(veth)
    ops.bind(veth)

    def crash(*_: object) -> None:
        raise Crash

    def enslave_then_crash(ifname: str, bridge: str) -> None:
        ip("link", "set", "dev", ifname, "master", bridge)
        raise Crash
    monkeypatch.setattr(switchbridge, "enslave_interface", enslave_then_crash)
    with pytest.raises(Crash):
        ops.connect_host(name, str(uplink["Name"]), veth)
    monkeypatch.undo()
    (rec,) = ops.bridges.records()
    assert rec.step == "bind" and state(veth)[0] == rec.bridge  # half done
    SwitchOps(service.host, tmp_path, ops.hostname).recover()  # the next start
    assert state(veth) == before  # released, prior state back
    again = switchbridge.link(rec.bridge)  # vsms's bridge gone; libvirt's isolated one back
    assert again is not None and again.get("ifalias") != ops.bridges.mark
    assert ops.bridges.records() == []
    sw = service.host.networks.get(name)
    assert sw is not None and sw.active and not sw.external and sw.forward == ""
    # a crash in the middle of an unbind: finished at the next start
    port = str(uplink["Name"])
    ops.connect_host(name, port, veth)
    (rec,) = ops.bridges.records()
    monkeypatch.setattr(switchbridge, "release_interface", crash)
    with pytest.raises(Crash):
        ops.disconnect(name, port)
    monkeypatch.undo()
    assert ops.bridges.records()[0].step == "unbind" and state(veth)[0] == rec.bridge
    SwitchOps(service.host, tmp_path, ops.hostname).recover()
    assert state(veth) == before and ops.bridges.records() == []
    sw = service.host.networks.get(name)
    assert sw is not None and sw.active and not sw.external
    # a reboot took the bridge away: the complete binding gets it back at the next start
    ops.connect_host(name, port, veth)
    (rec,) = ops.bridges.records()
    virsh("net-destroy", name)
    ip("link", "del", rec.bridge)
    SwitchOps(service.host, tmp_path, ops.hostname).recover()
    assert state(veth)[0] == rec.bridge and ops.bridges.records()[0].step == "bound"
    sw = service.host.networks.get(name)
    assert sw is not None and sw.active and sw.external == veth
    assert list(net.conn.GetInstance(switch)["OperationalStatus"]) == [2]
    # the interface taken off the bridge by hand: shown, and left so at the next start (an
    # administrator's change, not a crash's or a reboot's)
    ip("link", "set", "dev", veth, "nomaster")
    shown = net.conn.GetInstance(switch)
    assert list(shown["OperationalStatus"]) == [3] and shown["HealthState"] == 10
    assert f"ip link set {veth} master {rec.bridge}" in shown["StatusDescriptions"][0]
    SwitchOps(service.host, tmp_path, ops.hostname).recover()
    assert state(veth)[0] == "" and ops.bridges.records()[0].step == "bound"
    ip("link", "set", "dev", veth, "master", rec.bridge)  # put back as the status says
    assert list(net.conn.GetInstance(switch)["OperationalStatus"]) == [2]
    # a crash in DeleteSwitch after the network went: the interface released at the next start
    monkeypatch.setattr(switchbridge, "release_interface", crash)
    with pytest.raises(Crash):
        ops.delete_switch(name)
    monkeypatch.undo()
    assert service.host.networks.get(name) is None and state(veth)[0] == rec.bridge
    SwitchOps(service.host, tmp_path, ops.hostname).recover()
    assert state(veth) == before and not (SYS / rec.bridge).exists()
    assert ops.bridges.records() == []
    # a bridge of ours without its record, the interface on it: released and removed; a
    # bridge with another mark is never touched
    switchbridge.create_bridge("vxbstray0", ops.bridges.mark)
    switchbridge.create_bridge("vxbother0", "not-vsms")
    try:
        ip("link", "set", "dev", veth, "master", "vxbstray0")
        ops.recover()
        assert state(veth)[0] == "" and not (SYS / "vxbstray0").exists()
        assert (SYS / "vxbother0").exists()
        # an interface on a bridge vsms did not make stays there, and is refused for binding
        ip("link", "set", "dev", veth, "master", "vxbother0")
        ops.recover()
        assert state(veth)[0] == "vxbother0"
        with pytest.raises(InvalidState, match="vxbother0"):
            ops.bridges.prior(veth)
    finally:
        for br in ("vxbstray0", "vxbother0"):
            subprocess.run(["ip", "link", "del", br], check=False, capture_output=True)


def test_macvtap_network_defined_outside_vsms_stays_a_read_only_switch(net: Net,
                                                                      veth: str) -> None:
    name = f"vsms-xbr-macvtap-{net.token}"
    xml = (f"<network><name>{name}</name><forward mode='bridge'><interface dev='{veth}'/>"
           "</forward></network>")
    (Path(net.served.root) / "macvtap.xml").write_text(xml)
    virsh("net-define", str(Path(net.served.root) / "macvtap.xml"))
    net.switches.append(name)
    try:
        (sw,) = [s for s in net.conn.EnumerateInstances(sp.SWITCH) if s["ElementName"] == name]
        port = net.create_port(sw.path, "outside")
        ops = service_ops(net)
        net.ok("BindExternalEthernetPort", ExternalEthernetPort=_external(net, veth))
        rv, out = net.call("ConnectSwitchPort", SwitchPort=port,
                           LANEndpoint=sp.host_endpoint_path(ops.hostname, veth))
        assert rv == ReturnCode.INVALID_STATE and "outside vsms" in out["ErrorDescription"]
        assert state(veth)[0] == "" and ops.bridges.records() == []
        net.ok("UnbindExternalEthernetPort", ExternalEthernetPort=_external(net, veth))
    finally:
        virsh("net-undefine", name, check=False)


def _epr(path: pywbem.CIMInstanceName) -> ET.Element:
    """A WS-Addressing reference to ``path`` (its children go into a method's parameter)."""
    return epr_into(ET.Element("epr"), path)


def test_bind_and_connect_over_wsman(net: Net, veth: str) -> None:
    client = WSMan("127.0.0.1", port=net.served.server.ports["wsman-http"], ssl=False,
                   auth="basic", encryption="never", username="any", password="any",
                   operation_timeout=20, read_timeout=60)
    sel = SelectorSet()
    for k, v in net.conn.EnumerateInstanceNames(sp.SERVICE)[0].keybindings.items():
        sel.add_option(k, str(v))
    ops = service_ops(net)
    switch, name = net.create_switch("xbr-ws")
    uplink = net.create_port(switch, "uplink")
    ext = _external(net, veth)
    uri = WMI + sp.SERVICE
    out = _invoke(client, sel, "BindExternalEthernetPort", [("ExternalEthernetPort",
                                                             _epr(ext))])
    assert out.findtext(f"{{{uri}}}ReturnValue") == "0"
    endpoint = sp.host_endpoint_path(ops.hostname, veth)
    out = _invoke(client, sel, "ConnectSwitchPort", [("SwitchPort", _epr(uplink)),
                                                     ("LANEndpoint", _epr(endpoint))])
    assert out.findtext(f"{{{uri}}}ReturnValue") == "0"
    sw = net.served.service.host.networks.get(name)
    assert sw is not None and sw.external == veth and state(veth)[0] == sw.bridge
    net.ok("DeleteSwitch", VirtualSwitch=switch)
    assert state(veth)[0] == "" and not (SYS / sw.bridge).exists()
    net.ok("UnbindExternalEthernetPort", ExternalEthernetPort=ext)
