"""Helpers of the guest-OS tests: the served service, the serial console reader, isolated
libvirt networks, the domain type the guests run with, the Hyper-V calls that build a guest VM
over pywbem, and a host-side read of a data disk's marker."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import libvirt
import pywbem

from tests.conftest import QEMU_URI
from tests.e2e import wbemflow
from tests.e2e.conftest import Served, start_served
from vsms.cim import names
from vsms.testing import guestos
from vsms.testing.serialconsole import BOOT_TIMEOUT, Console, link_local

__all__ = ["BOOT_TIMEOUT", "Console", "link_local"]


def serve(root: Path, domain_type: str) -> Served:
    """A Service on qemu:///system (storage root ``root``, VMs of ``domain_type``) served by a
    WbemServer on 127.0.0.1."""
    return start_served(root, QEMU_URI, domain_type)


def marker_in(image: Path, fmt: str) -> bytes:
    """The ``marker`` file of the ext2 data disk ``image`` (qemu-img format ``fmt``), read on
    the host: converted to raw (``-U``: a running VM may hold the image) and read by debugfs."""
    with tempfile.TemporaryDirectory(prefix="vsms-marker-") as tmp:
        raw, out = Path(tmp) / "data.raw", Path(tmp) / "marker"
        subprocess.run(["qemu-img", "convert", "-U", "-f", fmt, "-O", "raw", str(image),
                        str(raw)], check=True, capture_output=True, timeout=60)
        subprocess.run(["debugfs", "-R", f"dump /marker {out}", str(raw)], check=True,
                       capture_output=True, timeout=60)
        return out.read_bytes()


def isolated_network(conn: libvirt.virConnect, name: str, bridge: str, mac: str
                     ) -> libvirt.virNetwork:
    """A transient isolated network: no <forward> and no <ip>, so no NAT and nothing leaves
    the machine; the host's only address on it is the bridge's IPv6 link-local one."""
    xml = (f"<network ipv6='yes'><name>{name}</name><bridge name='{bridge}' stp='off' "
           f"delay='0'/><mac address='{mac}'/></network>")
    net = conn.networkCreateXML(xml)
    # libvirt turns IPv6 off on a bridge without IPv6 addresses; its link-local one is wanted
    Path(f"/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6").write_text("0")
    return net


def connect_nic(conn: libvirt.virConnect, guid: str, network: str) -> str:
    """Attach the VM's (only) network adapter to ``network`` in its libvirt definition — the
    stand-in for the switch service in these tests; returns the adapter's MAC."""
    dom = conn.lookupByName(guid.upper())
    root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    ifaces = root.findall("devices/interface")
    assert len(ifaces) == 1, ET.tostring(root)
    iface = ifaces[0]
    iface.set("type", "network")
    for child in list(iface):
        if child.tag in ("source", "link", "backend"):
            iface.remove(child)
    ET.SubElement(iface, "source", network=network)
    conn.defineXML(ET.tostring(root, encoding="unicode"))
    mac = iface.find("mac")
    assert mac is not None
    return mac.get("address", "")


def domain_type(image: Path, cache: Path) -> str:
    """The domain type the guests run with: VSMS_DOMAIN_TYPE when set, else the one
    ``guestos.domain_type`` finds for this host."""
    return os.environ.get("VSMS_DOMAIN_TYPE") or guestos.domain_type(image, cache)


# --- the Hyper-V side: what a v1 script does over CIM-XML ---------------------------------

def add_disk(conn: pywbem.WBEMConnection, vm: pywbem.CIMInstanceName, disk: Path,
             slot: int) -> None:
    """A synthetic disk drive in ``slot`` of IDE controller 0 with the VHD inserted."""
    ide0 = [r for r in wbemflow.settings_of(conn, vm)
            if r["ResourceType"] == 5 and str(r["Address"]) == "0"]
    assert len(ide0) == 1
    drive = pywbem.CIMInstance(names.RASD, properties={
        "ResourceType": pywbem.Uint16(22), "ResourceSubType": "Microsoft Synthetic Disk Drive",
        "Parent": ide0[0].path.to_wbem_uri(), "Address": str(slot)})
    drive_path = wbemflow.add_resource(conn, vm, drive)
    wbemflow.add_resource(conn, vm, pywbem.CIMInstance(names.RASD, properties={
        "ResourceType": pywbem.Uint16(21), "ResourceSubType": "Microsoft Virtual Hard Disk",
        "Parent": drive_path.to_wbem_uri(), "Connection": [str(disk)]}))


def set_com1(conn: pywbem.WBEMConnection, vm: pywbem.CIMInstanceName, sock: Path) -> None:
    com = [r for r in wbemflow.settings_of(conn, vm)
           if r["ResourceType"] == 17 and r["ElementName"] == "COM 1"]
    assert len(com) == 1
    com[0]["Connection"] = [str(sock)]
    wbemflow.modify(conn, vm, com[0])


def add_nic(conn: pywbem.WBEMConnection, vm: pywbem.CIMInstanceName, mac: str,
            emulated: bool = False, port: pywbem.CIMInstanceName | None = None) -> None:
    """A synthetic (virtio-net) or emulated (legacy, e1000) network adapter with the static
    ``mac``, connected to the switch port ``port`` (Connection[0]) when one is given."""
    cls, sub = ((names.EMULATED_NIC_SD, "Microsoft Emulated Ethernet Port") if emulated
                else (names.SYNTHETIC_NIC_SD, "Microsoft Synthetic Ethernet Port"))
    wbemflow.add_resource(conn, vm, pywbem.CIMInstance(cls, properties={
        "ResourceType": pywbem.Uint16(10), "ResourceSubType": sub,
        "ElementName": "Network Adapter", "StaticMacAddress": True,
        "Address": mac.replace(":", "").upper(),
        "Connection": [port.to_wbem_uri()] if port is not None else None}))


def set_mac(conn: pywbem.WBEMConnection, vm: pywbem.CIMInstanceName, mac: str) -> None:
    nics = wbemflow.settings_of(conn, vm, names.SYNTHETIC_NIC_SD)
    assert len(nics) == 1
    nics[0]["StaticMacAddress"] = True
    nics[0]["Address"] = mac.replace(":", "").upper()
    wbemflow.modify(conn, vm, nics[0])


def start_all(conn: pywbem.WBEMConnection, vms: list[pywbem.CIMInstanceName]) -> None:
    """RequestStateChange 2 on every VM at once, then each job followed to Completed."""
    jobs = []
    for vm in vms:
        rv, out = wbemflow.invoke(conn, vm, "RequestStateChange",
                                  RequestedState=pywbem.Uint16(2))
        jobs.append((rv, out))
    for rv, out in jobs:
        wbemflow.completed(conn, rv, out)


def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f}s"
        time.sleep(0.2)


def destroy_network(net: libvirt.virNetwork) -> None:
    with contextlib.suppress(libvirt.libvirtError):
        net.destroy()
