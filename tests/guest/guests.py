"""Helpers of the guest-OS tests: the serial console reader, isolated libvirt networks, the
domain type the guests run with, and the Hyper-V calls that build a guest VM over pywbem."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import socket
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import libvirt
import pywbem

from tests.e2e import wbemflow
from vsms.cim import names
from vsms.testing.guestinit import LINE_PREFIX

BOOT_TIMEOUT = 420.0  # several TCG guests on two shared cores


def link_local(mac: str) -> str:
    """The EUI-64 IPv6 link-local address the guest kernel derives from ``mac``."""
    b = [int(x, 16) for x in mac.split(":")]
    eui = [b[0] ^ 0x02, b[1], b[2], 0xFF, 0xFE, b[3], b[4], b[5]]
    return str(ipaddress.IPv6Address(bytes([0xFE, 0x80] + [0] * 6 + eui)))


class Console:
    """Reads a COM port's Unix socket from the moment QEMU creates it; keeps the guest's
    ``vsms-guest:`` lines with the time each arrived."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[tuple[float, str]] = []
        self.closed = False
        self._sock: socket.socket | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sock = None
        while not self._stop.is_set() and sock is None:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(str(self.path))
                sock = s
            except OSError:
                s.close()
                time.sleep(0.01)
        if sock is None:
            return
        self._sock = sock
        buf = b""
        sock.settimeout(0.5)
        with sock:
            while not self._stop.is_set():
                try:
                    chunk = sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
                *done, buf = buf.split(b"\n")
                now = time.monotonic()
                with self._cond:
                    for raw in done:
                        text = raw.decode(errors="replace")
                        at = text.find(LINE_PREFIX)
                        if at >= 0:
                            self.lines.append((now, text[at + len(LINE_PREFIX):].strip()))
                    self._cond.notify_all()
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def wait(self, pattern: str, timeout: float = BOOT_TIMEOUT) -> tuple[float, re.Match[str]]:
        """The first line matching ``pattern`` (time, match); fails after ``timeout``."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for at, line in self.lines:
                    found = rx.fullmatch(line)
                    if found:
                        return at, found
                left = deadline - time.monotonic()
                assert left > 0 and not self.closed, (
                    f"{self.path.name}: no line {pattern!r} (closed={self.closed}); got "
                    f"{[line for _, line in self.lines]}")
                self._cond.wait(min(left, 1.0))

    def send(self, line: str) -> None:
        """Type ``line`` on the guest's console."""
        assert self._sock is not None, f"{self.path.name}: not connected"
        self._sock.sendall(line.encode() + b"\n")

    def text(self) -> list[str]:
        with self._cond:
            return [line for _, line in self.lines]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def isolated_network(conn: libvirt.virConnect, name: str, bridge: str, mac: str
                     ) -> libvirt.virNetwork:
    """A transient isolated network: no <forward> and no <ip> (no host address but the
    bridge's IPv6 link-local one, kept by ipv6='yes'), no NAT, nothing leaves the machine."""
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
    """The domain type the guests run with: VSMS_DOMAIN_TYPE when set, else "auto" when KVM
    boots this guest here, else "qemu" (TCG). KVM may be offered yet unable to boot a stock
    kernel (a paravirtual nested KVM such as PVM); the verdict is kept per image and host
    kernel in ``cache`` so the probe runs once per machine."""
    forced = os.environ.get("VSMS_DOMAIN_TYPE")
    if forced:
        return forced
    if not os.path.exists("/dev/kvm"):
        return "qemu"
    verdict = cache / f"kvm-{image.parent.name}-{os.uname().release}"
    if not verdict.exists():
        verdict.write_text("auto" if kvm_boots(image) else "qemu")
    return verdict.read_text().strip()


def kvm_boots(image: Path, timeout: float = 20.0) -> bool:
    """Whether QEMU with KVM boots the guest image to its init within ``timeout``."""
    proc = subprocess.Popen(
        ["qemu-system-x86_64", "-machine", "pc,accel=kvm", "-m", "128", "-snapshot",
         "-drive", f"file={image},format=vpc,if=ide", "-display", "none",
         "-monitor", "none", "-nic", "none", "-serial", "stdio"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    found = threading.Event()

    def scan() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            if f"{LINE_PREFIX} boot".encode() in raw:
                found.set()
                return

    reader = threading.Thread(target=scan, daemon=True)
    reader.start()
    found.wait(timeout)
    proc.kill()
    proc.wait(10)
    return found.is_set()


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


def add_nic(conn: pywbem.WBEMConnection, vm: pywbem.CIMInstanceName, mac: str) -> None:
    """A synthetic network adapter with the static ``mac`` (not connected to a switch)."""
    wbemflow.add_resource(conn, vm, pywbem.CIMInstance(names.SYNTHETIC_NIC_SD, properties={
        "ResourceType": pywbem.Uint16(10), "ResourceSubType": "Microsoft Synthetic Ethernet Port",
        "ElementName": "Network Adapter", "StaticMacAddress": True,
        "Address": mac.replace(":", "").upper()}))


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
