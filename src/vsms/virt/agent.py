"""What the integration components read from, and ask of, a running guest.

* The heartbeat and the guest's intrinsic key-value items come from the QEMU guest agent, when
  the domain has its virtio-serial channel ``org.qemu.guest_agent.0`` and libvirt reports the
  channel connected (the agent in the guest opened it): ``guest-ping``, ``guest-get-host-name``,
  ``guest-get-osinfo``, ``guest-network-get-interfaces`` and ``guest-info`` through
  ``virDomainQemuAgentCommand``, each with a short timeout. A domain without the channel, with
  the channel not connected, or whose agent does not answer has "no contact".
* The shutdown component presses the ACPI power button (``virDomainShutdownFlags`` with
  ``VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN``); whether the guest reacts is the guest's business.

The calls go through ``VirtHost``'s ownership check (an instance reaches only its own VMs).
"""

from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import libvirt
import libvirt_qemu  # type: ignore[import-untyped]

from vsms.cim.enums import EnabledState
from vsms.errors import InvalidState
from vsms.virt.host import VirtHost
from vsms.virt.states import describe

log = logging.getLogger(__name__)

AGENT_CHANNEL = "org.qemu.guest_agent.0"
AGENT_TIMEOUT = 2  # seconds per guest agent command


@dataclass
class GuestView:
    """What the guest agent told: ``contact`` False when there is none (then ``items`` is
    empty); ``items`` are the guest's intrinsic KVP items (Name -> Data)."""

    contact: bool = False
    items: dict[str, str] = field(default_factory=dict)


def agent_connected(live_xml: str) -> bool:
    """Does the running domain's XML show the guest agent channel connected?"""
    try:
        root = ET.fromstring(live_xml)
    except ET.ParseError:
        return False
    for target in root.iterfind("devices/channel/target"):
        if target.get("name") == AGENT_CHANNEL:
            return target.get("state") == "connected"
    return False


def _command(dom: Any, execute: str) -> Any:
    reply = libvirt_qemu.qemuAgentCommand(dom, json.dumps({"execute": execute}), AGENT_TIMEOUT, 0)
    return json.loads(reply).get("return")


def _addresses(interfaces: Any, family: str) -> str:
    found = []
    for iface in interfaces if isinstance(interfaces, list) else []:
        if not isinstance(iface, dict) or iface.get("name") == "lo":
            continue
        for addr in iface.get("ip-addresses") or []:
            if isinstance(addr, dict) and addr.get("ip-address-type") == family:
                found.append(str(addr.get("ip-address", "")))
    return ";".join(a for a in found if a)


def _intrinsic(dom: Any) -> dict[str, str]:
    """The Hyper-V intrinsic items the agent can answer (each one skipped when it cannot)."""
    items: dict[str, str] = {}
    queries: list[tuple[str, Any]] = [
        ("guest-get-host-name", lambda r: {"FullyQualifiedDomainName": r.get("host-name", "")}),
        ("guest-get-osinfo", lambda r: {
            "OSName": r.get("pretty-name") or r.get("name", ""),
            "OSVersion": r.get("version-id") or r.get("kernel-release", ""),
            "OSMajorVersion": str(r.get("version-id", "")).split(".")[0],
            "ProcessorArchitecture": r.get("machine", "")}),
        ("guest-network-get-interfaces", lambda r: {
            "NetworkAddressIPv4": _addresses(r, "ipv4"),
            "NetworkAddressIPv6": _addresses(r, "ipv6")}),
        ("guest-info", lambda r: {"IntegrationServicesVersion": r.get("version", "")}),
    ]
    for execute, pick in queries:
        try:
            reply = _command(dom, execute)
            values = pick(reply if reply is not None else {})
        except (libvirt.libvirtError, ValueError, AttributeError) as exc:
            log.debug("guest agent: %s failed: %s", execute, exc)
            continue
        items.update({k: str(v) for k, v in values.items() if v not in (None, "")})
    return items


def guest_view(host: VirtHost, guid: str, *, with_items: bool = False) -> GuestView:
    """Heartbeat (and, with ``with_items``, the intrinsic items) of VM ``guid``; no contact
    when it does not run or has no answering agent. NotFound for a VM that is not ours."""
    def act(dom: Any, state: EnabledState, _label: str) -> GuestView:
        if state is not EnabledState.ENABLED or not agent_connected(dom.XMLDesc(0)):
            return GuestView()
        try:
            _command(dom, "guest-ping")
        except (libvirt.libvirtError, ValueError) as exc:
            log.debug("guest agent of %s does not answer: %s", guid, exc)
            return GuestView()
        return GuestView(True, _intrinsic(dom) if with_items else {})
    result: GuestView = host._act(guid, "read the guest agent of", act)
    return result


def press_power_button(host: VirtHost, guid: str) -> str:
    """Send VM ``guid`` an ACPI power-button press; its label. InvalidState when it does not
    run (off, saved, paused, or changing state), NotFound when it is not ours."""
    def act(dom: Any, state: EnabledState, label: str) -> str:
        if state is not EnabledState.ENABLED:
            raise InvalidState(f"cannot shut down the guest of {label}: {describe(state)}; "
                               "only a running virtual machine has a guest to shut down")
        dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
        return label
    result: str = host._act(guid, "shut down", act)
    return result
