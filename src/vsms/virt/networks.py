"""Virtual switches as libvirt networks (issue 14): the only module that defines them.

A switch vsms creates is an isolated libvirt network: a bridge of its own (``vsw`` + 9 hex
digits), no ``<forward>`` (no NAT, no routing), no ``<ip>`` (no host address, no DHCP) and no
``ipv6`` attribute, so libvirt disables IPv6 on the bridge: the host has no address on it.
An internal port (a host-side port) sets ``ipv6='yes'`` and the bridge's MAC: the bridge then
carries only an IPv6 link-local address. An external switch is ``<forward mode='bridge'/>``
on a bridge vsms made with the host interface as its port (``operations.switchbridge``).

The switch's identity (its Name, ElementName, NumLearnableAddresses, ScopeOfResidence), its
ports and its host-side ports live in the network's ``<metadata>`` under our namespace, so the
network alone is the record: there is no libvirt network without its record, nor the reverse,
whatever moment a crash hits. A network without our metadata (``virsh net-define``) is a
switch too: its Name is the network's UUID, its ElementName the network's name. Every method
raises ``vsms.errors`` classes only.

The record also says whether the switch should run (``state``, written before each step):
``creating`` from CreateSwitch's define until its network has started, then ``running``;
``deleting`` (with the deleting instance's ID, ``owner``) before DeleteSwitch stops it. Only
these records make the service's start-up act (``operations.switches.SwitchOps.recover``): an
inactive ``running`` switch was stopped on purpose and stays stopped.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import libvirt

from vsms.errors import (
    InUse,
    InvalidParameter,
    InvalidState,
    NotFound,
    NotSupported,
    OperationFailed,
    VsmsError,
)
from vsms.model.switch import HostPort, Port, Switch
from vsms.virt.connection import Connection

log = logging.getLogger(__name__)

NAMESPACE = "urn:x-vsms:virtual-switch:1"
PREFIX = "vsw"
_SWITCH = f"{{{NAMESPACE}}}switch"
_PORT = f"{{{NAMESPACE}}}port"
_INTERNAL = f"{{{NAMESPACE}}}internal"
CREATING, RUNNING, DELETING = "creating", "running", "deleting"  # a switch's ``state``


def new_bridge_name() -> str:
    return "vsw" + uuid.uuid4().hex[:9]


def _metadata(sw: Switch) -> ET.Element:
    root = ET.Element(f"{PREFIX}:switch", {
        f"xmlns:{PREFIX}": NAMESPACE, "id": sw.id, "name": sw.friendly,
        "learnable": str(sw.learnable), "scope": sw.scope,
        "made-here": "true" if sw.made_here else "false"})
    if sw.state:
        root.set("state", sw.state)
    if sw.owner:
        root.set("owner", sw.owner)
    if sw.external:
        root.set("external", sw.external)
        root.set("external-port", sw.external_port)
    for p in sw.ports:
        ET.SubElement(root, f"{PREFIX}:port", {"name": p.name, "friendly": p.friendly,
                                              "scope": p.scope})
    if sw.internal is not None:
        i = sw.internal
        ET.SubElement(root, f"{PREFIX}:internal", {"name": i.name, "friendly": i.friendly,
                                                  "mac": i.mac, "port": i.port})
    return root


def build_xml(sw: Switch) -> str:
    """The network XML of a switch vsms made (isolated, or bound to ``sw.external``)."""
    net = ET.Element("network")
    if sw.internal is not None and not sw.external:
        net.set("ipv6", "yes")  # the host's port: an IPv6 link-local address on the bridge only
    ET.SubElement(net, "name").text = sw.network
    if sw.uuid:
        ET.SubElement(net, "uuid").text = sw.uuid
    ET.SubElement(ET.SubElement(net, "metadata"), "placeholder")
    if sw.external:  # vsms's own bridge (operations.switchbridge), the interface on it
        ET.SubElement(net, "forward", mode="bridge")
        ET.SubElement(net, "bridge", name=sw.bridge or new_bridge_name())
    else:
        ET.SubElement(net, "bridge", name=sw.bridge or new_bridge_name(), stp="off", delay="0")
        if sw.internal is not None:
            ET.SubElement(net, "mac", address=sw.internal.mac.lower())
    text = ET.tostring(net, encoding="unicode")
    return text.replace("<placeholder />", ET.tostring(_metadata(sw), encoding="unicode"))


def with_metadata(xml: str, sw: Switch) -> str:
    """``xml`` (a network libvirt gave) with our metadata set to ``sw``'s; the rest untouched."""
    root = ET.fromstring(xml)
    meta = root.find("metadata")
    if meta is None:
        meta = ET.Element("metadata")
        root.insert(2, meta)
    for old in meta.findall(_SWITCH):
        meta.remove(old)
    meta.append(ET.fromstring(ET.tostring(_metadata(sw), encoding="unicode")))
    return ET.tostring(root, encoding="unicode")


def parse(xml: str, active: bool) -> Switch:
    """The switch a network's (inactive) XML describes."""
    root = ET.fromstring(xml)
    name = root.findtext("name", "")
    net_uuid = root.findtext("uuid", "").upper()
    bridge_el = root.find("bridge")
    bridge = bridge_el.get("name", "") if bridge_el is not None else ""
    fwd = root.find("forward")
    forward = fwd.get("mode", "nat") if fwd is not None else ""
    addresses = tuple(ip.get("address", "") for ip in root.findall("ip"))
    meta = root.find(f"metadata/{_SWITCH}")
    if meta is None:
        return Switch(id=net_uuid, friendly=name, network=name, uuid=net_uuid, bridge=bridge,
                      active=active, made_here=False, forward=forward, addresses=addresses)
    ports = tuple(Port(p.get("name", ""), p.get("friendly", ""), p.get("scope", ""))
                  for p in meta.findall(_PORT))
    internal_el = meta.find(_INTERNAL)
    internal = (HostPort(internal_el.get("name", ""), internal_el.get("friendly", ""),
                         internal_el.get("mac", ""), internal_el.get("port", ""))
                if internal_el is not None else None)
    try:
        learnable = int(meta.get("learnable", "0"))
    except ValueError:
        learnable = 0
    return Switch(id=meta.get("id", net_uuid), friendly=meta.get("name", name), network=name,
                  uuid=net_uuid, bridge=bridge, active=active,
                  made_here=meta.get("made-here", "true") == "true", learnable=learnable,
                  scope=meta.get("scope", ""), ports=ports, internal=internal,
                  external=meta.get("external", ""), external_port=meta.get("external-port", ""),
                  forward=forward, addresses=addresses, state=meta.get("state", ""),
                  owner=meta.get("owner", ""))


def host_link_local(sw: Switch, proc: Path = Path("/proc/sys/net/ipv6/conf")) -> None:
    """Give an active switch with an internal port its IPv6 link-local address: libvirt turns
    IPv6 off on a bridge without IPv6 addresses, so vsms turns it on again after each start (the
    kernel adds the fe80:: address once the bridge has a port up). Needs root."""
    if not sw.bridge or (sw.internal is None and not sw.external):
        return
    try:
        if sw.external:  # our own bridge: the internal port's MAC, IPv6 only with the port
            if sw.internal is not None:
                subprocess.run(["ip", "link", "set", "dev", sw.bridge, "address",
                                sw.internal.mac.lower()], capture_output=True, timeout=10,
                               check=True)
            (proc / sw.bridge / "disable_ipv6").write_text("1" if sw.internal is None else "0")
            return
        (proc / sw.bridge / "disable_ipv6").write_text("0")
    except (OSError, subprocess.SubprocessError) as exc:
        raise OperationFailed(f"cannot enable IPv6 on bridge {sw.bridge} of switch "
                              f"'{sw.friendly}' ({exc}): the internal port needs vsms to run "
                              "as root") from None


# The libvirt steps that change a network, one function each (the crash-safety tests put kill
# points around them: vsms.testing.killpoints).

def define_network(conn: Any, xml: str) -> Any:
    return conn.networkDefineXML(xml)


def start_network(net: Any) -> None:
    net.create()


def stop_network(net: Any) -> None:
    net.destroy()


def undefine_network(net: Any) -> None:
    net.undefine()


def _inactive_xml(net: Any) -> str:
    """The network's persistent definition (a driver without the flag, such as libvirt's test
    driver, gives its only one)."""
    try:
        return str(net.XMLDesc(libvirt.VIR_NETWORK_XML_INACTIVE))
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
            raise
        return str(net.XMLDesc(0))


def _error(exc: libvirt.libvirtError, what: str) -> Exception:
    code = exc.get_error_code()
    if code in (libvirt.VIR_ERR_NO_NETWORK,):
        return NotFound(f"cannot {what}: the libvirt network is gone ({exc.get_error_message()})")
    if code == libvirt.VIR_ERR_OPERATION_INVALID:
        return InvalidState(f"cannot {what}: {exc.get_error_message()}")
    return InvalidParameter(f"cannot {what}: libvirt says: {exc.get_error_message()}")


class Networks:
    """The libvirt networks of one connection, as switches. ``lock`` serialises the
    read-modify-write of a switch's record within this process."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.lock = threading.RLock()
        self._watched: Any = None  # the libvirt connection our network events come from
        self._watch_lock = threading.Lock()

    def _watch(self, conn: Any) -> None:
        """Listen to the network lifecycle events of ``conn`` (once per libvirt connection: a
        reconnection brings a new one): whenever a switch's network starts (``virsh
        net-start``, libvirtd's autostart, our own restarts), its internal port's IPv6
        link-local setting, which libvirt resets at each start, is applied again. A new
        connection also re-applies it to every active switch (starts may have been missed)."""
        with self._watch_lock:
            if self._watched is conn:
                return
            self._watched = conn
        try:
            conn.networkEventRegisterAny(None, libvirt.VIR_NETWORK_EVENT_ID_LIFECYCLE,
                                         self._network_event, None)
        except libvirt.libvirtError as exc:
            log.warning("libvirt cannot report network events (%s): a switch's internal port "
                        "gets its IPv6 link-local address again only when vsms restarts it",
                        exc.get_error_message())
            return
        threading.Thread(target=self._relink, args=(None,), name="vsms-switch-relink",
                         daemon=True).start()

    def _network_event(self, _conn: Any, net: Any, event: int, _detail: int,
                       _opaque: Any) -> None:
        """From libvirt's event thread: hand a started network to a thread of its own (no
        libvirt call here)."""
        if event == libvirt.VIR_NETWORK_EVENT_STARTED:
            threading.Thread(target=self._relink, args=(net.name(),), name="vsms-switch-relink",
                             daemon=True).start()

    def _relink(self, network: str | None) -> None:
        """Apply the internal port's IPv6 setting to ``network`` (None: every active one)."""
        try:
            found = [self.by_network(network)] if network is not None else self.switches()
            for sw in found:
                if sw is not None and sw.active:
                    host_link_local(sw)
        except VsmsError as exc:
            log.warning("could not re-apply the internal port of a virtual switch: %s", exc)

    def _run(self, what: str, fn: Any) -> Any:
        def work(conn: Any) -> Any:
            self._watch(conn)
            try:
                return fn(conn)
            except libvirt.libvirtError as exc:
                raise _error(exc, what) from None
        return self._conn.run(what, work)

    def switches(self) -> list[Switch]:
        """Every libvirt network as a switch, sorted by ElementName."""
        def work(conn: Any) -> list[Switch]:
            out = []
            for net in conn.listAllNetworks(0):
                try:
                    out.append(parse(_inactive_xml(net),
                                     bool(net.isActive())))
                except libvirt.libvirtError:
                    continue  # undefined meanwhile
            return sorted(out, key=lambda s: (s.friendly.casefold(), s.id))
        result: list[Switch] = self._run("list the virtual switches", work)
        return result

    def get(self, switch_id: str) -> Switch | None:
        """The switch whose Name is ``switch_id`` (case-insensitive), or None. A switch vsms
        made has the network name = its Name: that one network is read first."""
        want = switch_id.casefold()
        direct = self.by_network(switch_id) if "/" not in switch_id else None
        if direct is not None and direct.id.casefold() == want:
            return direct
        return next((s for s in self.switches() if s.id.casefold() == want), None)

    def by_network(self, network: str) -> Switch | None:
        def work(conn: Any) -> Switch | None:
            try:
                net = conn.networkLookupByName(network)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
                    return None
                raise
            return parse(_inactive_xml(net), bool(net.isActive()))
        found: Switch | None = self._run(f"read network {network}", work)
        return found

    def create(self, sw: Switch, owner: str) -> Switch:
        """Define the network of ``sw`` (its record inside, ``creating`` by instance
        ``owner``), autostart it, start it, then record it ``running``."""
        def work(conn: Any) -> Switch:
            net = define_network(conn, build_xml(replace(sw, state=CREATING, owner=owner)))
            try:
                net.setAutostart(1)
                start_network(net)
            except libvirt.libvirtError:
                undefine_network(net)  # no record without its network started
                raise
            xml = _inactive_xml(net)
            net = define_network(conn, with_metadata(xml, replace(parse(xml, True),
                                                                  state=RUNNING, owner="")))
            return parse(_inactive_xml(net), True)
        made: Switch = self._run(f"create virtual switch '{sw.friendly}'", work)
        return made

    def save(self, sw: Switch, *, rebuild: bool = False,
             before_start: Callable[[], None] | None = None, start: bool = False) -> Switch:
        """Write ``sw``'s record into its network's persistent definition. With ``rebuild``
        (a switch vsms made whose bridge, host port or binding changed) the whole definition is
        rebuilt and an active network restarted so the change applies now; ``before_start``
        runs between the stop and the start (an external switch's bridge). An inactive network
        stays inactive (stopped on purpose: ``virsh net-destroy``) unless ``start``."""
        def work(conn: Any) -> Switch:
            net = conn.networkLookupByName(sw.network)
            active = bool(net.isActive())
            if rebuild:
                if not sw.made_here:
                    raise NotSupported(f"switch '{sw.friendly}' was defined outside vsms: "
                                       "change its network with virsh net-edit")
                xml = build_xml(sw)
            else:
                xml = with_metadata(_inactive_xml(net), sw)
            net = define_network(conn, xml)
            if rebuild and active:
                stop_network(net)
            if before_start is not None:
                before_start()
            if (rebuild and active) or (start and not active):
                try:
                    start_network(net)
                except libvirt.libvirtError as exc:  # another service's start-up started it
                    if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID \
                            or not net.isActive():
                        raise
            return parse(_inactive_xml(net), bool(net.isActive()))
        saved: Switch = self._run(f"update virtual switch '{sw.friendly}'", work)
        if saved.active:
            host_link_local(saved)
        return saved

    def delete(self, sw: Switch, owner: str) -> None:
        """Record the switch ``deleting`` by instance ``owner``, stop and undefine its network
        (the record goes with it). A failing stop or undefine puts the record back."""
        def work(conn: Any) -> None:
            net = conn.networkLookupByName(sw.network)
            xml = _inactive_xml(net)
            before = parse(xml, bool(net.isActive()))
            net = define_network(conn, with_metadata(xml, replace(before, state=DELETING,
                                                                  owner=owner)))
            try:
                if net.isActive():
                    stop_network(net)
                undefine_network(net)
            except libvirt.libvirtError:
                with contextlib.suppress(libvirt.libvirtError):
                    define_network(conn, xml)
                raise
        self._run(f"delete virtual switch '{sw.friendly}'", work)

    def users(self, network: str) -> list[tuple[str, bool]]:
        """(domain name, running) of every domain on the host, ours or not, with an interface
        on ``network`` in its persistent or live definition."""
        def work(conn: Any) -> list[tuple[str, bool]]:
            out = []
            for dom in conn.listAllDomains(0):
                try:
                    running = bool(dom.isActive())
                    xmls = [dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)]
                    if running:
                        xmls.append(dom.XMLDesc(0))
                except libvirt.libvirtError:
                    continue
                if any(_on_network(x, network) for x in xmls):
                    out.append((dom.name(), running))
            return out
        found: list[tuple[str, bool]] = self._run(f"list the users of network {network}", work)
        return found

    def live_interface(self, guid: str, alias: str) -> ET.Element | None:
        """The live ``<interface>`` of running domain ``guid`` for the adapter whose user alias
        is ``alias``: the one attached in its place while the VM runs (alias ``alias-live``,
        see ``attach_live``) when there is one, else ``alias``; None when the domain is not
        running (or has no such interface)."""
        def work(conn: Any) -> ET.Element | None:
            dom = conn.lookupByUUIDString(guid)
            if not dom.isActive():
                return None
            found: dict[str, ET.Element] = {}
            for el in ET.fromstring(dom.XMLDesc(0)).findall("devices/interface"):
                a = el.find("alias")
                if a is not None and a.get("name") in (alias, live_alias(alias)):
                    found[a.get("name", "")] = el
            return found.get(live_alias(alias), found.get(alias))
        found: ET.Element | None = self._run(f"read the adapters of {guid}", work)
        return found

    def update_live(self, guid: str, interface_xml: str) -> None:
        """Apply an ``<interface>`` to running domain ``guid`` (its live definition only)."""
        def work(conn: Any) -> None:
            conn.lookupByUUIDString(guid).updateDeviceFlags(
                interface_xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        self._run(f"change a network adapter of running virtual machine {guid}", work)

    def attach_live(self, guid: str, interface_xml: str, replaces: str) -> None:
        """Hot-plug ``interface_xml`` into running domain ``guid`` (live only), then ask for
        the adapter with alias ``replaces`` to be unplugged. libvirt cannot change a live
        adapter's type (an unconnected adapter is ``type='user'``, link down), so a new
        adapter with the same MAC takes its place; the old one goes once the guest lets it
        go (a guest without ACPI hot-plug support keeps it, link down, until the VM stops)."""
        def work(conn: Any) -> None:
            dom = conn.lookupByUUIDString(guid)
            dom.attachDeviceFlags(interface_xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
            with contextlib.suppress(libvirt.libvirtError):  # else it stays, link down
                dom.detachDeviceAlias(replaces, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        self._run(f"connect a network adapter of running virtual machine {guid}", work)


def live_alias(alias: str) -> str:
    """The alias of the adapter attached while the VM runs in place of adapter ``alias``."""
    return f"{alias}-live"


def _on_network(xml: str, network: str) -> bool:
    for iface in ET.fromstring(xml).findall("devices/interface"):
        src = iface.find("source")
        if iface.get("type") == "network" and src is not None and src.get("network") == network:
            return True
    return False


def renamed(sw: Switch, **changes: Any) -> Switch:
    """``sw`` with ``changes`` (dataclasses.replace, typed for callers)."""
    return replace(sw, **changes)


def require_free_name(switches: list[Switch], name: str) -> None:
    """InUse when a switch or a libvirt network already has ``name``."""
    for s in switches:
        if name.casefold() in (s.id.casefold(), s.network.casefold()):
            raise InUse(f"a virtual switch named {name!r} already exists "
                        f"('{s.friendly}'): choose another Name")
