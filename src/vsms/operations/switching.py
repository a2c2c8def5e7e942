"""Connecting a VM's network adapter to a switch port, or disconnecting it, off or running.

The VM's persistent definition (its ``<interface>`` and our metadata's ``port``/``switch-id``)
is the record of the connection and is written first, in one ``define``. A running (or paused)
VM's adapter then changes live: moved to the new network (libvirt moves a live adapter between
networks), or, to disconnect it, left on its network with its link down (libvirt cannot take a
live adapter off its network; from the next start it is unconnected). An adapter that has been
unconnected since the VM started (``type='user'``, link down) cannot change type live, so an
adapter with the same MAC on the switch is hot-plugged in its place (alias ``…-live``) and the
old one unplugged as far as the guest lets it (``Networks.attach_live``). If the live change
fails, the previous definition is restored.
"""

from __future__ import annotations

import copy
import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from vsms.cim.enums import EnabledState
from vsms.errors import InvalidParameter, InvalidState, VsmsError
from vsms.model.vm import VirtualSystem
from vsms.operations.modify import ReplaceSystem, describe_state, load_system
from vsms.operations.undo import OpContext
from vsms.virt import domxml, metadata, networks
from vsms.virt.host import VirtHost

log = logging.getLogger(__name__)

Link = tuple[str, str, str]  # (libvirt network, port Name, switch Name); all "" = unconnected
UNCONNECTED: Link = ("", "", "")
LIVE = (EnabledState.ENABLED, EnabledState.PAUSED)


def nic_index(vs: VirtualSystem, dev_id: str) -> int:
    for i, n in enumerate(vs.nics):
        if n.dev_id.upper() == dev_id.upper():
            return i
    raise InvalidParameter(f"virtual machine '{vs.name}' ({vs.guid}) has no network adapter "
                           f"{dev_id}")


@dataclass(frozen=True)
class LiveChange:
    """What to do to a running VM's adapter: apply ``xml`` (an ``<interface>``) in place, or,
    with ``replaces`` (an alias), hot-plug it and unplug that adapter."""

    xml: str
    replaces: str = ""

    def apply(self, host: VirtHost, guid: str) -> None:
        if self.replaces:
            host.networks.attach_live(guid, self.xml, self.replaces)
        else:
            host.networks.update_live(guid, self.xml)


def _with_alias(xml: str, alias: str) -> str:
    el = ET.fromstring(xml)
    found = el.find("alias")
    if found is None:
        found = ET.SubElement(el, "alias")
    found.set("name", alias)
    return ET.tostring(el, encoding="unicode")


def plan(host: VirtHost, vs: VirtualSystem, index: int, link: Link) -> tuple[VirtualSystem,
                                                                          LiveChange | None]:
    """The new VM and the live change to make (None: the VM is off, or nothing to do live);
    refusals (InvalidState) before any change."""
    state = host.state(vs.guid)
    new = copy.deepcopy(vs)
    nic = new.nics[index]
    nic.switch, nic.port, nic.switch_id = link
    if state is EnabledState.DISABLED:
        return new, None
    if state not in LIVE:
        raise InvalidState(f"cannot change the connection of a network adapter of '{vs.name}' "
                           f"({vs.guid}): it is {describe_state(state)}; turn it off or start it")
    iface = host.networks.live_interface(vs.guid, metadata.nic_alias(index))
    if iface is None:
        raise InvalidState(f"virtual machine '{vs.name}' stopped meanwhile; try again")
    alias_el = iface.find("alias")
    alias = alias_el.get("name", "") if alias_el is not None else metadata.nic_alias(index)
    src = iface.find("source")
    live = src.get("network", "") if iface.get("type") == "network" and src is not None else ""
    if link[0]:
        target = host.networks.by_network(link[0])
        if target is not None and not target.active:
            raise InvalidState(
                f"cannot connect a network adapter of running virtual machine '{vs.name}' "
                f"({vs.guid}) to virtual switch '{target.friendly}': the switch is stopped (its "
                f"libvirt network {target.network} is not active, e.g. after virsh "
                f"net-destroy); start it with virsh net-start {target.network}, or turn the "
                "virtual machine off first")
        if not live:  # unconnected since the start: a new adapter on the switch replaces it
            return new, LiveChange(_with_alias(domxml.interface_xml(new, index),
                                               networks.live_alias(alias)), replaces=alias)
        return new, LiveChange(_with_alias(domxml.interface_xml(new, index), alias))
    if not live:
        return new, None  # unconnected live already
    return new, LiveChange(_with_alias(domxml.interface_xml(new, index, network=live,
                                                           link_down=True), alias))


def apply(host: VirtHost, old: VirtualSystem, new: VirtualSystem,
          live: LiveChange | None) -> None:
    """Define ``new``, then make the ``live`` change to the running VM; on a live failure the
    old definition comes back and the error is raised."""
    host.define(new)
    if live is None:
        return
    try:
        live.apply(host, new.guid)
    except VsmsError:
        try:
            host.define(old)
        except VsmsError:
            log.exception("could not restore the definition of %s", old.guid)
        raise


def set_link(host: VirtHost, guid: str, dev_id: str, link: Link) -> VirtualSystem:
    """Connect adapter ``dev_id`` of VM ``guid`` to ``link`` (UNCONNECTED: disconnect it);
    returns the VM as defined now."""
    vs = load_system(host, guid)
    index = nic_index(vs, dev_id)
    new, live = plan(host, vs, index, link)
    apply(host, vs, new, live)
    return new


def only_connections_differ(old: VirtualSystem, new: VirtualSystem) -> bool:
    """True when ``new`` is ``old`` with nothing but adapters' connections changed."""
    strip = copy.deepcopy(new)
    if len(strip.nics) != len(old.nics):
        return False
    for a, b in zip(strip.nics, old.nics, strict=True):
        a.switch, a.port, a.switch_id = b.switch, b.port, b.switch_id
        if a.identifiers == [f"{{{a.dev_id}}}"] and not b.identifiers:  # the default, spelt out
            a.identifiers = []
    return strip == old


@dataclass
class LiveReconnect(ReplaceSystem):
    """ModifyVirtualSystemResources of a running VM that only moves adapters between switches:
    the definition is replaced (undo: the old one), then each moved adapter changes live."""

    live: list[LiveChange] = field(default_factory=list)  # one per moved adapter

    def run(self, ctx: OpContext) -> None:
        super().run(ctx)
        for change in self.live:
            change.apply(self.host, self.new.guid)


def prepare_live(host: VirtHost, old: VirtualSystem, new: VirtualSystem) -> LiveReconnect:
    """Plan the live part of a resource change to a running VM, or refuse it (InvalidState)
    unless it only changes adapters' connections."""
    if not only_connections_differ(old, new):
        raise InvalidState(
            f"cannot change devices of '{old.name}' ({old.guid}): it is "
            f"{describe_state(host.state(old.guid))}; turn it off first (RequestStateChange 3); "
            "only the Connection of network adapters may change while it runs")
    live = []
    for i, (a, b) in enumerate(zip(old.nics, new.nics, strict=True)):
        if (a.switch, a.port, a.switch_id) != (b.switch, b.port, b.switch_id):
            _, change = plan(host, old, i, (b.switch, b.port, b.switch_id))
            if change is not None:
                live.append(change)
    return LiveReconnect(host, old, new, host.check(new), live)
