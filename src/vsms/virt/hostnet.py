"""The host's own network interfaces (Msvm_ExternalEthernetPort) and the host-side ports that
are on no switch yet (internal ports made, external interfaces bound).

Interfaces come from ``/sys/class/net``: Ethernet-type interfaces that are neither bridges, nor
tap/macvtap devices, nor loopback. The *management* interfaces are those carrying the host's
default route (IPv4 or IPv6) or an address outside 127.0.0.0/8 and the link-local ranges: binding
one of them to a switch would take the host's own connection away, so it is refused unless the
service setting ``switch_allow_management_interface`` says otherwise.

Ports on no switch are kept in ``<state_dir>/host-ports.json`` (written whole to a temporary
file, fsynced and renamed into place): a crash leaves the old record or the new one. The
bindings of external switches' bridges are journaled there too (``bridges``,
``operations.switchbridge``).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vsms.errors import InvalidParameter, OperationFailed
from vsms.model.switch import HostPort

SYS_NET = Path("/sys/class/net")


@dataclass(frozen=True)
class Interface:
    name: str
    mac: str  # "52:54:00:..." as the kernel writes it


def interfaces(root: Path = SYS_NET) -> list[Interface]:
    """The host's Ethernet interfaces that may be bound to a switch, sorted by name."""
    out = []
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        name = entry.name
        try:
            kind = (entry / "type").read_text().strip()
            mac = (entry / "address").read_text().strip()
        except OSError:
            continue
        if kind != "1" or name == "lo" or (entry / "bridge").exists() \
                or (entry / "tun_flags").exists() or name.startswith(("macvtap", "vnet")):
            continue
        out.append(Interface(name, mac))
    return out


def master_of(name: str, root: Path = SYS_NET) -> str:
    """The bridge (or other master) interface ``name`` is a port of ("" none or no such
    interface)."""
    try:
        return os.path.basename(os.readlink(root / name / "master"))
    except OSError:
        return ""


def _default_route_interfaces() -> set[str]:
    found: set[str] = set()
    try:
        for line in Path("/proc/net/route").read_text().splitlines()[1:]:
            cols = line.split()
            if len(cols) > 2 and cols[1] == "00000000":
                found.add(cols[0])
        for line in Path("/proc/net/ipv6_route").read_text().splitlines():
            cols = line.split()
            if len(cols) == 10 and cols[0] == "0" * 32 and cols[1] == "00" \
                    and cols[9] != "lo":
                found.add(cols[9])
    except OSError:
        pass
    return found


def _addressed_interfaces() -> set[str]:
    """Interfaces with an IPv4 address outside 127/8 or a global IPv6 address (``ip -j``)."""
    try:
        run = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True,
                             timeout=10, check=True)
        links = json.loads(run.stdout or "[]")
    except (OSError, subprocess.SubprocessError, ValueError):
        return set()
    found = set()
    for link in links:
        for a in link.get("addr_info", []):
            local = str(a.get("local", ""))
            if a.get("family") == "inet" and not local.startswith("127."):
                found.add(str(link.get("ifname", "")))
            if a.get("family") == "inet6" and a.get("scope") == "global":
                found.add(str(link.get("ifname", "")))
    return found


def management_reason(name: str) -> str:
    """Why ``name`` carries the host's own connection ("" when it does not)."""
    if name in _default_route_interfaces():
        return f"interface {name} carries the host's default route"
    if name in _addressed_interfaces():
        return f"interface {name} carries a management address of the host"
    return ""


@dataclass
class HostPorts:
    """Internal ports on no switch and bound external interfaces (names)."""

    internal: list[HostPort] = field(default_factory=list)
    bound: list[str] = field(default_factory=list)
    bridges: list[dict[str, Any]] = field(default_factory=list)  # operations.switchbridge


class HostPortFile:
    """``host-ports.json`` in the state directory; ``lock`` serialises changes."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "host-ports.json"
        self.lock = threading.RLock()

    def load(self) -> HostPorts:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return HostPorts()
        except (OSError, ValueError) as exc:
            raise OperationFailed(f"cannot read {self.path}: {exc}; fix or remove the file"
                                  ) from None
        try:
            return HostPorts([HostPort(**p) for p in raw.get("internal", [])],
                             [str(b) for b in raw.get("bound", [])],
                             [dict(b) for b in raw.get("bridges", [])])
        except TypeError as exc:
            raise InvalidParameter(f"{self.path} is not valid: {exc}") from None

    def save(self, ports: HostPorts) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = json.dumps({"internal": [asdict(p) for p in ports.internal],
                           "bound": ports.bound, "bridges": ports.bridges}, indent=1).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError as exc:
            raise OperationFailed(f"cannot write {self.path}: {exc}") from None
