"""Connecting a VM's network adapter to a switch port, or disconnecting it, off or running.

The VM's persistent definition (its ``<interface>`` and our metadata's ``port``/``switch-id``)
is the record of the connection and is written first, in one ``define``. A running (or paused)
VM's adapter then changes live: moved to the new network (libvirt moves a live adapter between
networks), or, to disconnect it, left on its network with its link down (libvirt cannot take a
live adapter off its network; from the next start it is unconnected). An adapter that has been
unconnected since the VM started cannot be connected live (libvirt cannot change its type):
that is refused with 32775 before anything changes. If the live change fails, the previous
definition is restored.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field

from vsms.cim.enums import EnabledState
from vsms.errors import InvalidParameter, InvalidState, VsmsError
from vsms.model.vm import VirtualSystem
from vsms.operations.modify import ReplaceSystem, describe_state, load_system
from vsms.operations.undo import OpContext
from vsms.virt import domxml, metadata
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


def _live_network(host: VirtHost, vs: VirtualSystem, index: int) -> str | None:
    """The network the running VM's adapter is on now ("" none), None if it is not running."""
    iface = host.networks.live_interface(vs.guid, metadata.nic_alias(index))
    if iface is None:
        return None
    src = iface.find("source")
    return src.get("network", "") if iface.get("type") == "network" and src is not None else ""


def plan(host: VirtHost, vs: VirtualSystem, index: int, link: Link) -> tuple[VirtualSystem,
                                                                          str | None]:
    """The new VM and the live ``<interface>`` to apply (None: the VM is off); refusals
    (InvalidState) before any change."""
    state = host.state(vs.guid)
    new = copy.deepcopy(vs)
    nic = new.nics[index]
    nic.switch, nic.port, nic.switch_id = link
    if state is EnabledState.DISABLED:
        return new, None
    if state not in LIVE:
        raise InvalidState(f"cannot change the connection of a network adapter of '{vs.name}' "
                           f"({vs.guid}): it is {describe_state(state)}; turn it off or start it")
    live = _live_network(host, vs, index)
    if live is None:
        raise InvalidState(f"virtual machine '{vs.name}' stopped meanwhile; try again")
    if link[0]:
        if not live:
            raise InvalidState(
                f"network adapter {nic.dev_id} of '{vs.name}' has been unconnected since the "
                "virtual machine started, and libvirt cannot connect such an adapter while it "
                "runs: turn the virtual machine off, connect the adapter, and start it again")
        return new, domxml.interface_xml(new, index)
    if not live:
        return new, None  # unconnected live already
    return new, domxml.interface_xml(new, index, network=live, link_down=True)


def apply(host: VirtHost, old: VirtualSystem, new: VirtualSystem, live_xml: str | None) -> None:
    """Define ``new``, then apply ``live_xml`` to the running VM; on a live failure the old
    definition comes back and the error is raised."""
    host.define(new)
    if live_xml is None:
        return
    try:
        host.networks.update_live(new.guid, live_xml)
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
    new, live_xml = plan(host, vs, index, link)
    apply(host, vs, new, live_xml)
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

    live: list[str] = field(default_factory=list)  # the <interface> of each moved adapter

    def run(self, ctx: OpContext) -> None:
        super().run(ctx)
        for xml in self.live:
            self.host.networks.update_live(self.new.guid, xml)


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
            _, xml = plan(host, old, i, (b.switch, b.port, b.switch_id))
            if xml is not None:
                live.append(xml)
    return LiveReconnect(host, old, new, host.check(new), live)
