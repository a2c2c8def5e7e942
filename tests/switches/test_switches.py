"""The virtual switch service on qemu:///system (issue 14 items 1 and 2): a private switch is
an isolated libvirt network with no host address; ports; VM adapters connected to ports (the
domain XML and the associations show it); the documented refusals with nothing changed; a
restarted service sees the same switches; a network defined with virsh is a switch too."""

from __future__ import annotations

import json
import subprocess
import uuid
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
import pywbem

from tests.e2e import wbemflow
from tests.switches.conftest import Net, domain_xml, guid_of, net_xml, virsh
from vsms.app import Service
from vsms.cim import names
from vsms.cim.embedded import parse_instance
from vsms.cim.enums import JobState, ReturnCode
from vsms.cli.main import main as cli_main
from vsms.mapping import switch_paths as sp
from vsms.model.switch import Port, Switch
from vsms.operations.switches import SwitchOps
from vsms.virt import networks

pytestmark = pytest.mark.qemu


def interfaces(guid: str, *, inactive: bool = True) -> list[ET.Element]:
    return ET.fromstring(domain_xml(guid, inactive=inactive)).findall("devices/interface")


def addresses(ifname: str) -> list[dict[str, str]]:
    run = subprocess.run(["ip", "-j", "addr", "show", "dev", ifname], capture_output=True,
                         text=True, check=True, timeout=10)
    return [a for link in json.loads(run.stdout) for a in link.get("addr_info", [])]


def nic_rasds(net: Net, vm: pywbem.CIMInstanceName) -> list[pywbem.CIMInstance]:
    return [r for r in wbemflow.settings_of(net.conn, vm) if int(r["ResourceType"]) == 10]


def test_private_switch_ports_and_adapters(net: Net, capsys: pytest.CaptureFixture[str]) -> None:
    conn = net.conn
    switch, name = net.create_switch("P")
    sw = conn.GetInstance(switch)
    assert (sw["Name"], sw["ElementName"]) == (name, f"P-{net.token}")
    assert sw["NumLearnableAddresses"] == 64
    # isolated: a bridge, no forward, no IP, IPv6 off on the bridge (no host address)
    root = ET.fromstring(net_xml(name))
    assert root.find("forward") is None and root.find("ip") is None
    assert root.get("ipv6") is None
    bridge = root.find("bridge").get("name")  # type: ignore[union-attr]
    assert bridge and addresses(bridge) == []
    assert "yes" in virsh("net-info", name).split("Autostart:")[1].splitlines()[0]

    # refusals, nothing made: a taken Name, a bad Name, a port on a missing switch
    rv, out = net.call("CreateSwitch", Name=name, FriendlyName="again")
    assert rv == ReturnCode.SYSTEM_IN_USE and "already exists" in out["ErrorDescription"]
    rv, out = net.call("CreateSwitch", Name="bad/name", FriendlyName="x")
    assert rv == ReturnCode.INVALID_PARAMETER and "not valid" in out["ErrorDescription"]
    missing = sp.switch_path(str(uuid.uuid4()).upper())
    rv, out = net.call("CreateSwitchPort", VirtualSwitch=missing, Name="p", FriendlyName="p")
    assert rv == ReturnCode.INVALID_PARAMETER and "does not exist" in out["ErrorDescription"]

    p1, p2 = net.create_port(switch, "one"), net.create_port(switch, "two")
    rv, out = net.call("CreateSwitchPort", VirtualSwitch=switch, Name=p1["Name"],
                       FriendlyName="dup")
    assert rv == ReturnCode.SYSTEM_IN_USE
    ports = conn.Associators(switch, AssocClass=sp.HOSTED_ACCESS_POINT, ResultClass=sp.PORT)
    assert {str(p.path["Name"]) for p in ports} == {p1["Name"], p2["Name"]}
    assert len(conn.Associators(p1, AssocClass=sp.BINDS_TO)) == 1

    # a synthetic adapter on port one, an emulated one on port two
    vm = net.vm("sw")
    guid = guid_of(vm)
    net.add_nic(vm, p1)
    net.add_nic(vm, p2, synthetic=False)
    ifs = interfaces(guid)
    assert [(i.get("type"), i.find("source").get("network"),  # type: ignore[union-attr]
             i.find("model").get("type")) for i in ifs] == [  # type: ignore[union-attr]
        ("network", name, "virtio"), ("network", name, "e1000")]
    # `vsms vm show` names the switch
    assert cli_main(["--url", net.served.url, "vm", "show", guid]) == 0
    shown = capsys.readouterr().out
    assert shown.count(f"switch P-{net.token}") == 2, shown
    conns = sorted(r["Connection"][0] for r in nic_rasds(net, vm))
    assert conns == sorted(str(sp.port_path(p["SystemName"], p["Name"]).to_wbem_uri())
                           for p in (p1, p2))
    # port -> ActiveConnection -> VmLANEndpoint -> the VM's Ethernet port
    (endpoint,) = conn.Associators(p1, AssocClass=sp.ACTIVE_CONNECTION)
    assert endpoint.classname == sp.VM_ENDPOINT and endpoint["Connected"] is True
    assert str(endpoint.path["SystemName"]).upper() == guid.upper()
    (device,) = conn.Associators(endpoint.path, AssocClass=sp.DEVICE_SAP)
    assert device.classname == "Msvm_SyntheticEthernetPort"
    assert endpoint["MACAddress"] == device["PermanentAddress"]

    # connecting to a port of a missing switch, or a taken port, is refused
    ghost = sp.port_path(str(uuid.uuid4()).upper(), "nope")
    nic = pywbem.CIMInstance(names.SYNTHETIC_NIC_SD, properties={
        "ResourceType": pywbem.Uint16(10), "ResourceSubType": "Microsoft Synthetic Ethernet Port",
        "Connection": [str(ghost.to_wbem_uri())]})
    rv, out = wbemflow.invoke(conn, names.VSMS, "AddVirtualSystemResources", TargetSystem=vm,
                              ResourceSettingData=[nic.tocimxmlstr()])
    assert rv == ReturnCode.INVALID_PARAMETER and "does not exist" in out["ErrorDescription"]
    assert len(interfaces(guid)) == 2
    rv, out = net.call("ConnectSwitchPort", SwitchPort=ghost, LANEndpoint=endpoint.path)
    assert rv == ReturnCode.INVALID_PARAMETER
    rv, out = net.call("ConnectSwitchPort", SwitchPort=p2, LANEndpoint=endpoint.path)
    assert rv == ReturnCode.SYSTEM_IN_USE and "already connected" in out["ErrorDescription"]

    # a switch or port with connected adapters is not deleted (32774), nothing changes
    rv, out = net.call("DeleteSwitch", VirtualSwitch=switch)
    assert rv == ReturnCode.SYSTEM_IN_USE and "connected ports" in out["ErrorDescription"]
    rv, out = net.call("DeleteSwitchPort", SwitchPort=p1)
    assert rv == ReturnCode.SYSTEM_IN_USE
    assert conn.GetInstance(p1)["Name"] == p1["Name"]

    # disconnect (off VM): the interface is unconnected, the RASD has no Connection
    net.ok("DisconnectSwitchPort", SwitchPort=p1)
    first = interfaces(guid)[0]
    assert first.get("type") == "user" and first.find("link").get("state") == "down"  # type: ignore[union-attr]
    assert conn.Associators(p1, AssocClass=sp.ACTIVE_CONNECTION) == []
    rv, out = net.call("DisconnectSwitchPort", SwitchPort=p1)
    assert rv == ReturnCode.INVALID_STATE
    out = net.ok("ConnectSwitchPort", SwitchPort=p1, LANEndpoint=endpoint.path)
    assert out["ActiveConnection"]["Antecedent"]["Name"] == p1["Name"]
    assert interfaces(guid)[0].find("source").get("network") == name  # type: ignore[union-attr]

    # a restarted service rebuilds the same view from libvirt
    again = Service(net.served.service.settings)
    try:
        reg = again.registry
        assert reg.get_instance(names.NAMESPACE, switch)["ElementName"] == f"P-{net.token}"
        seen = reg.associators(names.NAMESPACE, p1, assoc_class=sp.ACTIVE_CONNECTION)
        assert [str(e.path["SystemName"]).upper() for e in seen] == [guid.upper()]
    finally:
        again.close()

    # the VM goes: the switch can be deleted, its network with it
    net.ok("DisconnectSwitchPort", SwitchPort=p1)
    net.ok("DisconnectSwitchPort", SwitchPort=p2)
    net.ok("DeleteSwitchPort", SwitchPort=p2)
    net.ok("DeleteSwitch", VirtualSwitch=switch)
    assert name not in virsh("net-list", "--all", "--name").split()
    with pytest.raises(pywbem.CIMError):
        conn.GetInstance(switch)


def test_network_defined_with_virsh_is_a_switch(net: Net, tmp_path: pytest.TempPathFactory
                                                ) -> None:
    name = f"vsms-virsh-{net.token}"
    net.switches.append(name)
    xml = tmp_path / "net.xml"  # type: ignore[operator]
    xml.write_text(f"<network><name>{name}</name><bridge name='vsv{net.token[:8]}'/></network>")
    virsh("net-define", str(xml))
    uuid_text = virsh("net-uuid", name).strip().upper()
    (sw,) = [s for s in net.conn.EnumerateInstances(sp.SWITCH) if s["ElementName"] == name]
    assert sw["Name"] == uuid_text
    # a port on it works like on any switch; deleting it removes the network
    port = net.create_port(sw.path, "v")
    assert net.conn.GetInstance(port)["SystemName"] == uuid_text
    net.ok("DeleteSwitch", VirtualSwitch=sw.path)
    assert name not in virsh("net-list", "--all", "--name").split()


def test_a_network_that_cannot_start_is_not_left_behind(net: Net,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # injected failure: the bridge name of an existing interface, which libvirt accepts in
    # the definition but cannot create when it starts the network
    monkeypatch.setattr(networks, "new_bridge_name", lambda: "lo")
    name = str(uuid.uuid4()).upper()
    net.switches.append(name)
    rv, out = net.call("CreateSwitch", Name=name, FriendlyName=f"fail-{net.token}")
    assert rv != ReturnCode.COMPLETED, out
    assert "libvirt" in out["ErrorDescription"]
    assert name not in virsh("net-list", "--all", "--name").split()
    assert [s for s in net.conn.EnumerateInstances(sp.SWITCH) if s["Name"] == name] == []


def _import(net: Net, directory: Path, targets: list[str] | None = None
            ) -> tuple[pywbem.CIMInstance, str]:
    """Import in place with a new ID (ImportVirtualSystemEx when ``targets`` maps switches);
    the finished job and the imported VM's GUID."""
    conn = net.conn
    if targets is None:
        job = wbemflow.run_job(conn, names.VSMS, "ImportVirtualSystem",
                               ImportDirectory=str(directory), GenerateNewID=True)
    else:
        isd = _with_target(_preview(net, directory), targets)
        job = wbemflow.run_job(conn, names.VSMS, "ImportVirtualSystemEx",
                               ImportDirectory=str(directory),
                               ImportSettingData=isd.tocimxmlstr())
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    (vm,) = wbemflow.affected_vms(conn, job)
    net.served.guids.add(str(vm["Name"]).upper())
    return job, str(vm["Name"])


def _preview(net: Net, directory: Path) -> pywbem.CIMInstance:
    rv, out = wbemflow.invoke(net.conn, names.VSMS, "GetVirtualSystemImportSettingData",
                              ImportDirectory=str(directory))
    assert rv == 0, out
    isd = out["ImportSettingData"]
    return isd if isinstance(isd, pywbem.CIMInstance) else parse_instance(isd)


def test_export_records_switches_and_import_finds_them(net: Net) -> None:
    conn = net.conn
    root = net.served.root
    p_switch, p_name = net.create_switch("exp-P")
    q_switch, q_name = net.create_switch("exp-Q")
    p_friendly, q_friendly = f"exp-P-{net.token}", f"exp-Q-{net.token}"
    on_p, on_q = net.vm("on-p"), net.vm("on-q")
    net.add_nic(on_p, net.create_port(p_switch, "ep"))
    q_port = net.create_port(q_switch, "eq")
    net.add_nic(on_q, q_port)
    wbemflow.export(conn, on_p, root / "exp-p")
    for d in ("exp-q1", "exp-q2"):
        wbemflow.export(conn, on_q, root / d)
    p_dir = next((root / "exp-p").iterdir())
    q1, q2 = (next((root / d).iterdir()) for d in ("exp-q1", "exp-q2"))
    # config.xml records the adapter's switch by ID and name
    adapter = ET.parse(p_dir / "config.xml").getroot().find("network-adapters/adapter")
    assert adapter is not None
    assert (adapter.get("switch-id"), adapter.get("switch-name")) == (p_name, p_friendly)
    preview = _preview(net, p_dir)
    assert (preview["SourceNetworkConnections"], preview["TargetNetworkConnections"]) == (
        [p_friendly], [p_friendly])

    # the same switch (by ID) here: the copy's adapter is on P, on a new port
    _, guid = _import(net, p_dir)
    (iface,) = ET.fromstring(domain_xml(guid)).findall("devices/interface")
    assert iface.find("source").get("network") == p_name  # type: ignore[union-attr]
    ports = conn.Associators(p_switch, AssocClass=sp.HOSTED_ACCESS_POINT)
    assert len(ports) == 2
    connected = [conn.Associators(p.path, AssocClass=sp.ACTIVE_CONNECTION) for p in ports]
    assert sorted(str(e[0].path["SystemName"]).upper() for e in connected) == sorted(
        [guid.upper(), guid_of(on_p).upper()])

    # switch Q deleted: GetVirtualSystemImportSettingData reports it missing, an import leaves
    # the adapter disconnected and its job says so; TargetNetworkConnections maps it to P
    wbemflow.run_job(conn, names.VSMS, "DestroyVirtualSystem", ComputerSystem=on_q)
    net.ok("DeleteSwitch", VirtualSwitch=q_switch)
    preview = _preview(net, q1)
    assert (preview["SourceNetworkConnections"], preview["TargetNetworkConnections"]) == (
        [q_friendly], [""])
    job, guid = _import(net, q1)
    assert f"switch '{q_friendly}' ({q_name}) does not exist here" in job["Description"]
    (iface,) = ET.fromstring(domain_xml(guid)).findall("devices/interface")
    assert iface.get("type") == "user"
    rv, out = wbemflow.invoke(conn, names.VSMS, "ImportVirtualSystemEx",
                              ImportDirectory=str(q2), ImportSettingData=_with_target(
                                  _preview(net, q2), ["no such switch"]).tocimxmlstr())
    assert rv == ReturnCode.JOB_STARTED
    failed = wbemflow.wait_job(conn, out["Job"])
    assert failed["JobState"] == JobState.EXCEPTION
    assert "no virtual switch here" in failed["ErrorDescription"]
    _, guid = _import(net, q2, [p_friendly])
    (iface,) = ET.fromstring(domain_xml(guid)).findall("devices/interface")
    assert iface.find("source").get("network") == p_name  # type: ignore[union-attr]


def _with_target(isd: pywbem.CIMInstance, targets: list[str]) -> pywbem.CIMInstance:
    isd["TargetNetworkConnections"] = targets
    return isd


def _record(name: str) -> tuple[str, str, bool]:
    """(state, owner, active) of network ``name`` as libvirt has it."""
    meta = ET.fromstring(net_xml(name)).find(f"metadata/{{{networks.NAMESPACE}}}switch")
    assert meta is not None, name
    active = name in virsh("net-list", "--name").split()
    return meta.get("state", ""), meta.get("owner", ""), active


def test_start_up_finishes_interrupted_work_only(net: Net, tmp_path: Path) -> None:
    """What the service's next start does (``SwitchOps.recover`` on the served service's
    host and state): a switch an administrator stopped stays stopped (and shows so); a
    CreateSwitch or DeleteSwitch of this instance left halfway is finished (a delete whose
    switch is in use now is rolled back); an older vsms's switch is started once; another
    instance's records and a foreign network are left as they are."""
    service = net.served.service
    me = service.host.instance
    assert me
    ops = SwitchOps(service.host, service.settings.state_dir, "localhost")
    assert ops.owner == me
    switch, stopped = net.create_switch("stopped")
    assert _record(stopped) == ("running", "", True)
    vm = net.vm("stopped")
    net.add_nic(vm, net.create_port(switch, "vm"))
    virsh("net-destroy", stopped)  # the administrator's stop
    shown = net.conn.GetInstance(switch)
    assert shown["EnabledState"] == 3 and list(shown["OperationalStatus"]) == [10]
    assert f"virsh net-start {stopped}" in shown["StatusDescriptions"][0]
    net.create_port(switch, "more")  # a change of its record does not start it
    assert _record(stopped) == ("running", "", False)
    # a VM on it does not start, and the job says which network
    job = wbemflow.run_job(net.conn, vm, "RequestStateChange", RequestedState=pywbem.Uint16(2))
    assert job["JobState"] != JobState.COMPLETED and stopped in job["ErrorDescription"]
    assert f"'virsh net-start {stopped}'" in job["ErrorDescription"]  # and the fix

    def define(label: str, state: str, owner: str, *, made_here: bool = True) -> str:
        name = str(uuid.uuid4()).upper()
        net.switches.append(name)
        sw = Switch(id=name, friendly=f"{label}-{net.token}", network=name, state=state,
                    owner=owner, made_here=made_here, ports=(Port("p1", "p1"),))
        (tmp_path / "n.xml").write_text(networks.build_xml(sw))
        virsh("net-define", str(tmp_path / "n.xml"))
        return name

    other = str(uuid.uuid4()).upper()
    creating, legacy = define("creating", "creating", me), define("legacy", "", "")
    deleting = define("deleting", "deleting", me)
    theirs = [define("their-c", "creating", other), define("their-d", "deleting", other)]
    foreign = f"vsms-foreign-{net.token}"
    net.switches.append(foreign)
    (tmp_path / "f.xml").write_text(f"<network><name>{foreign}</name></network>")
    virsh("net-define", str(tmp_path / "f.xml"))
    foreign_xml = net_xml(foreign)
    # a DeleteSwitch of ours interrupted, and a VM connected to the switch since
    used_path, used = net.create_switch("used")
    net.add_nic(net.vm("used"), net.create_port(used_path, "u"))
    sw = service.host.networks.get(used)
    assert sw is not None
    service.host.networks.save(replace(sw, state="deleting", owner=me))
    virsh("net-destroy", used)
    status = {s["Name"]: list(s["OperationalStatus"])
              for s in net.conn.EnumerateInstances(sp.SWITCH)}
    assert (status[creating], status[deleting], status[used]) == ([8], [9], [9])
    ops.recover()  # the next start
    assert _record(stopped) == ("running", "", False)
    assert _record(creating) == ("running", "", True)
    assert _record(legacy) == ("running", "", True)
    assert _record(used) == ("running", "", True)
    assert deleting not in virsh("net-list", "--all", "--name").split()
    assert [_record(n) for n in theirs] == [("creating", other, False),
                                            ("deleting", other, False)]
    assert net_xml(foreign) == foreign_xml and foreign not in virsh("net-list", "--name")
    # an older vsms's switch was wanted running once: stopped now, it stays stopped
    virsh("net-destroy", legacy)
    ops.recover()
    assert _record(legacy) == ("running", "", False) and _record(stopped)[2] is False
    # the administrator starts the stopped switch again: OK
    virsh("net-start", stopped)
    shown = net.conn.GetInstance(switch)
    assert list(shown["OperationalStatus"]) == [2] and shown["StatusDescriptions"] == ["OK"]
