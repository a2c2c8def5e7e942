"""A real guest OS (vsms.testing.guestos) on qemu:///system, driven over CIM-XML by pywbem.

One module fixture builds everything once and boots four guests: VM A is defined through
DefineVirtualSystem + AddVirtualSystemResources (IDE disk with the guest VHD, a data VHD holding
a marker file, COM 1 on a socket, a synthetic NIC with a static MAC), exported with its storage
and imported twice — B as a copy with a new ID, C in place with a new ID. A's adapter is
connected to a port of the private switch P (CreateSwitch, CreateSwitchPort, RASD Connection),
and the imports find P by its ID and connect B and C to it; D (its own data disk) is on Q, an
internal switch (the host has a port on it, with a link-local address only). A's NIC is
synthetic (virtio-net), D's emulated (e1000). The four boot together; D pings only once
A, B and C have all answered each other, and these only once all three are up (the test types
"go" on their consoles). Every guest
reports on its serial console; the tests read what it said.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import shutil
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import libvirt
import pytest
import pywbem

from tests.conftest import QEMU_URI, fresh_dir
from tests.e2e import wbemflow
from tests.e2e.conftest import Served, remove_vms
from tests.guest import guests
from tests.guest.conftest import GuestImage
from vsms.cim import names
from vsms.cim.embedded import serialize_instance
from vsms.cim.enums import EnabledState, JobState, ReturnCode
from vsms.mapping import switch_paths
from vsms.testing import guestos

pytestmark = pytest.mark.qemu
SWITCH_SERVICE = "Msvm_VirtualSwitchManagementService"

PEER_DEADLINE_P = 60   # s: how long A, B, C retry each other (told to start once all are up)
PEER_DEADLINE_Q = 10   # s: how long D retries A, B, C (told to start once they are all up)


@dataclass
class Guest:
    name: str
    vm: pywbem.CIMInstanceName
    mac: str
    marker: bytes
    console: guests.Console | None = None

    @property
    def guid(self) -> str:
        return str(self.vm.keybindings["Name"]).upper()

    @property
    def address(self) -> str:
        return guests.link_local(self.mac)


@dataclass
class Lab:
    conn: pywbem.WBEMConnection
    virt: libvirt.virConnect
    served: Served
    root: Path
    domain_type: str
    guests: dict[str, Guest] = field(default_factory=dict)
    bridges: dict[str, str] = field(default_factory=dict)  # switch -> host's link-local
    switches: list[str] = field(default_factory=list)  # libvirt networks of the switches
    timings: dict[str, float] = field(default_factory=dict)


def _dir(parent: Path, name: str, mode: int = 0o755) -> Path:
    d = parent / name
    d.mkdir()
    d.chmod(mode)
    return d


def _define(lab: Lab, name: str, boot: Path, data: Path, mac: str,
            port: pywbem.CIMInstanceName) -> pywbem.CIMInstanceName:
    vm = wbemflow.define_vm(lab.conn, f"{name}-{lab.root.name}", memory_mb=128,
                            track=lab.served.guids)
    guests.add_disk(lab.conn, vm, boot, 0)
    guests.add_disk(lab.conn, vm, data, 1)
    guests.set_com1(lab.conn, vm, lab.root / "serial" / f"{name}.sock")
    guests.add_nic(lab.conn, vm, mac, emulated=name == "d", port=port)
    return vm


def _switch_call(lab: Lab, method: str, **params: object) -> dict[str, object]:
    rv, out = wbemflow.invoke(lab.conn, SWITCH_SERVICE, method, **params)
    assert rv == ReturnCode.COMPLETED, (method, rv, out)
    return out


def _switch(lab: Lab, label: str) -> tuple[pywbem.CIMInstanceName, str]:
    """A private switch made by CreateSwitch: an isolated libvirt network."""
    name = str(uuid.uuid4()).upper()
    lab.switches.append(name)
    out = _switch_call(lab, "CreateSwitch", Name=name, FriendlyName=f"{label}-{lab.root.name}",
                       NumLearnableAddresses=pywbem.Uint32(64), ScopeOfResidence="")
    path = out["CreatedVirtualSwitch"]
    assert isinstance(path, pywbem.CIMInstanceName)
    return path, name


def _port(lab: Lab, switch: pywbem.CIMInstanceName, label: str) -> pywbem.CIMInstanceName:
    out = _switch_call(lab, "CreateSwitchPort", VirtualSwitch=switch,
                       Name=f"{label}-{uuid.uuid4().hex[:8]}", FriendlyName=label,
                       ScopeOfResidence="")
    port = out["CreatedSwitchPort"]
    assert isinstance(port, pywbem.CIMInstanceName)
    return port


def _internal_port(lab: Lab, switch: pywbem.CIMInstanceName) -> str:
    """Make ``switch`` internal: a host port on it (the host gets only an IPv6 link-local
    address there); returns that port's MAC."""
    out = _switch_call(lab, "CreateInternalEthernetPortDynamicMac",
                       Name=f"host-{lab.root.name}", FriendlyName="host port")
    internal = lab.conn.GetInstance(out["CreatedInternalEthernetPort"])
    endpoint = switch_paths.host_endpoint_path(str(internal.path["SystemName"]),
                                               str(internal["DeviceID"]))
    _switch_call(lab, "ConnectSwitchPort", SwitchPort=_port(lab, switch, "host"),
                 LANEndpoint=endpoint)
    mac = str(internal["PermanentAddress"])
    return ":".join(mac[i:i + 2] for i in range(0, 12, 2)).lower()


def _import_copy(lab: Lab, exp: Path, name: str) -> pywbem.CIMInstanceName:
    rv, out = wbemflow.invoke(lab.conn, names.VSMS, "GetVirtualSystemImportSettingData",
                              ImportDirectory=str(exp))
    assert rv == ReturnCode.COMPLETED
    isd: pywbem.CIMInstance = out["ImportSettingData"]
    target = _dir(lab.root, "copy")
    isd["CreateCopy"], isd["GenerateNewId"] = True, True
    isd["Name"] = f"{name}-{lab.root.name}"
    isd["TargetResourcePaths"] = [str(target / Path(p).name)
                                  for p in isd["SourceResourcePaths"]]
    job = wbemflow.run_job(lab.conn, names.VSMS, "ImportVirtualSystemEx",
                           ImportDirectory=str(exp), ImportSettingData=serialize_instance(isd))
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    vm: pywbem.CIMInstanceName = wbemflow.affected_vms(lab.conn, job)[0].path
    lab.served.guids.add(str(vm.keybindings["Name"]).upper())
    return vm


def _import_in_place(lab: Lab, exp: Path) -> pywbem.CIMInstanceName:
    job = wbemflow.run_job(lab.conn, names.VSMS, "ImportVirtualSystem",
                           ImportDirectory=str(exp), GenerateNewID=True)
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    vm: pywbem.CIMInstanceName = wbemflow.affected_vms(lab.conn, job)[0].path
    lab.served.guids.add(str(vm.keybindings["Name"]).upper())
    return vm


def _boot(lab: Lab, networks: dict[str, str]) -> None:
    """Check each guest's adapter is on its switch's network, open the consoles, start the VMs
    together."""
    for n, network in networks.items():
        g = lab.guests[n]
        iface = ET.fromstring(lab.virt.lookupByName(g.guid).XMLDesc()).find(
            "devices/interface")
        assert iface is not None and iface.get("type") == "network", n
        assert iface.find("source").get("network") == network, n  # type: ignore[union-attr]
        assert iface.find("mac").get("address") == g.mac.lower(), n  # type: ignore[union-attr]
        g.console = guests.Console(lab.root / "serial" / f"{n}.sock")
    guests.start_all(lab.conn, [lab.guests[n].vm for n in networks])


@pytest.fixture(scope="module")
def lab(guest_image: GuestImage) -> Iterator[Lab]:
    t0 = time.monotonic()
    image, dtype = guest_image.path, guest_image.domain_type
    root = fresh_dir()
    served = guests.serve(root, dtype)
    lab = Lab(served.connect(), libvirt.open(QEMU_URI), served, root, dtype)
    conn, virt = lab.conn, lab.virt
    lab.timings["image"] = time.monotonic() - t0
    tag = secrets.token_hex(3)
    try:
        # P: a private switch (no host address on it); Q: an internal one (the host's port
        # on it has a link-local address D can reach)
        p_switch, p_name = _switch(lab, "guest-P")
        q_switch, q_name = _switch(lab, "guest-Q")
        lab.bridges["q"] = guests.link_local(_internal_port(lab, q_switch))
        _dir(root, "serial", 0o1777)
        vms = _dir(root, "vms")
        macs = {n: f"00:15:5d:{tag[:2]}:{tag[2:4]}:{i:02x}"
                for i, n in enumerate("abcd", 1)}
        markers = {n: secrets.token_bytes(4096) for n in "ad"}
        p_peers = [guests.link_local(macs[n]) for n in "abc"]
        q_peers = [guests.link_local(macs[n]) for n in "abc"] + [lab.bridges["q"]]
        for n, peers, deadline, switch in (("a", p_peers, PEER_DEADLINE_P, p_switch),
                                           ("d", q_peers, PEER_DEADLINE_Q, q_switch)):
            shutil.copyfile(image, vms / f"{n}-boot.vhd")
            (vms / f"{n}-boot.vhd").chmod(0o644)
            text = "".join(f"{p}\n" for p in peers) + f"deadline {deadline}\n"
            text += "wait go\n"
            guestos.data_disk(vms / f"{n}-data.vhd",
                              {"marker": markers[n], "peers": text.encode()})
            vm = _define(lab, n, vms / f"{n}-boot.vhd", vms / f"{n}-data.vhd", macs[n],
                         _port(lab, switch, n))
            lab.guests[n] = Guest(n, vm, macs[n], markers[n])
        exp_parent = _dir(root, "exp")
        wbemflow.export(conn, lab.guests["a"].vm, exp_parent / "a")
        exp = exp_parent / "a" / f"a-{root.name}"
        # the imports find switch P by its ID and connect their adapters to new ports on it
        for n, vm in (("b", _import_copy(lab, exp, "b")), ("c", _import_in_place(lab, exp))):
            guests.set_com1(conn, vm, root / "serial" / f"{n}.sock")
            guests.set_mac(conn, vm, macs[n])
            lab.guests[n] = Guest(n, vm, macs[n], markers["a"])
        lab.timings["prepare"] = time.monotonic() - t0 - lab.timings["image"]
        t1 = time.monotonic()
        _boot(lab, {"a": p_name, "b": p_name, "c": p_name, "d": q_name})
        for n in "abc":  # each pings only once all three NICs are up
            _console(lab, n).wait("waiting for go")
        for n in "abc":
            _console(lab, n).send("go")
        for n in "abc":
            _console(lab, n).wait("ready")
        lab.timings["boot P"] = time.monotonic() - t1
        _console(lab, "d").wait("waiting for go")
        _console(lab, "d").send("go")
        _console(lab, "d").wait("ready")
        lab.timings["boot Q"] = time.monotonic() - t1
        yield lab
    finally:
        for g in lab.guests.values():
            if g.console is not None:
                g.console.stop()
        conn.close()
        served.server.stop()
        served.service.jobs.shutdown(60)
        remove_vms(served)
        served.service.close()
        for name in lab.switches:
            with contextlib.suppress(libvirt.libvirtError):
                guests.destroy_network(virt.networkLookupByName(name))
                virt.networkLookupByName(name).undefine()
        virt.close()
        shutil.rmtree(root, ignore_errors=True)


def _console(lab: Lab, n: str) -> guests.Console:
    console = lab.guests[n].console
    assert console is not None
    return console


def test_each_guest_reads_its_own_data_disk(lab: Lab) -> None:
    """A, its copy B and its in-place import C boot from their VHDs and print the SHA-256 of
    the marker on their data disk; D prints that of its own."""
    for n, g in lab.guests.items():
        _, found = _console(lab, n).wait(r"marker sha256=([0-9a-f]{64})", timeout=0.1)
        assert found.group(1) == hashlib.sha256(g.marker).hexdigest(), n
    # the copy and the in-place import are other VMs, each on disks of its own
    assert len({g.guid for g in lab.guests.values()}) == 4
    disks = [str(r["Connection"][0]) for g in lab.guests.values()
             for r in wbemflow.settings_of(lab.conn, g.vm) if r["ResourceType"] == 21]
    assert len(disks) == len(set(disks)) == 8, disks


def test_guests_on_one_network_reach_each_other_and_no_further(lab: Lab) -> None:
    """A, B and C (on the private switch P) each report their link-local address and reach the
    two others; D (on the internal switch Q, pinging once they had all answered) reaches the
    host's port on Q only."""
    abc = [lab.guests[n] for n in "abc"]
    for g in abc:
        console = _console(lab, g.name)
        console.wait(f"ipv6 {g.address}", timeout=0.1)
        for peer in [p.address for p in abc if p is not g]:
            console.wait(f"ping {peer} ok", timeout=0.1)
        assert not [line for line in console.text() if line.endswith("failed")]
    d = _console(lab, "d")
    d.wait(f"ipv6 {lab.guests['d'].address}", timeout=0.1)
    d.wait(f"ping {lab.bridges['q']} ok", timeout=0.1)
    for g in abc:
        d.wait(f"ping {g.address} failed", timeout=0.1)


def _is_off(dom: libvirt.virDomain) -> Callable[[], bool]:
    return lambda: bool(dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF)


def test_acpi_power_button_turns_the_guests_off_cleanly(lab: Lab) -> None:
    """InitiateShutdown (A) and an ACPI shutdown request (the others): each guest powers itself
    off (its console says so), the VMs end Disabled, and libvirt records a guest shutdown, not
    a destroy."""
    doms = {n: lab.virt.lookupByName(g.guid) for n, g in lab.guests.items()}
    # A the v1 way: Msvm_ShutdownComponent.InitiateShutdown, its job completes once the guest
    # has turned itself off; the others by libvirt's ACPI power button directly
    (shutdown,) = [d.path for d in lab.conn.Associators(
        lab.guests["a"].vm, AssocClass="Msvm_SystemDevice", ResultClass="Msvm_ShutdownComponent")]
    rv, out = wbemflow.invoke(lab.conn, shutdown, "InitiateShutdown", Force=False,
                              Reason="guest test")
    assert rv == ReturnCode.JOB_STARTED, out
    for n, dom in doms.items():
        if n != "a":
            dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
    for n, dom in doms.items():
        _console(lab, n).wait("power button: powering off", timeout=120)
        guests.until(_is_off(dom), 120, f"guest {n} powered off")
        assert dom.state()[1] == libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN, dom.state()
        assert wbemflow.enabled_state(lab.conn, lab.guests[n].vm) == EnabledState.DISABLED
    job = wbemflow.wait_job(lab.conn, out["Job"])
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    # nothing is left to force: turning off the VM the guest powered off is an invalid state
    rv, _ = wbemflow.invoke(lab.conn, lab.guests["a"].vm, "RequestStateChange",
                            RequestedState=pywbem.Uint16(3))
    assert rv == ReturnCode.INVALID_STATE
    assert wbemflow.enabled_state(lab.conn, lab.guests["a"].vm) == EnabledState.DISABLED
    print(f"guest tests: domain type {lab.domain_type}, seconds {lab.timings}")
