"""VirtHost: the virtual machines of one libvirt connection, as vsms models and states.

Only domains that carry our metadata are seen; every other domain is ignored. With an
``instance`` ID (``vsms serve`` always passes one), only the domains whose metadata names that
instance are seen (``vsms.virt.adopt``); without one, every domain with our metadata is (the
host-wide view of maintenance tools and tests). Every method is thread-safe and raises
``vsms.errors`` classes only (a libvirt error never escapes).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import libvirt

from vsms.cim.enums import EnabledState
from vsms.errors import InUse, InvalidParameter, InvalidState, NotFound
from vsms.mapping import checks
from vsms.model.vm import VirtualSystem
from vsms.virt import caps, domxml, events, stats
from vsms.virt.adopt import Adoption, adopted_xml
from vsms.virt.cache import SystemCache, clone
from vsms.virt.connection import Connection
from vsms.virt.livestates import LiveStates
from vsms.virt.networks import Networks
from vsms.virt.portindex import HeldPorts
from vsms.virt.snaphost import SnapshotDisks
from vsms.virt.states import describe, steady_state

_UNDEFINE_ALL = (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                 | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                 | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
                 | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
_UNDEFINE_BASIC = (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                   | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
_UNSUPPORTED_FLAGS = (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT)

GUID_TAKEN = "this GUID is already used by a virtual machine this service does not manage"

Action = Callable[[Any, EnabledState, str], None]  # (domain, its steady state, label)
Inventory = tuple[tuple[VirtualSystem, EnabledState], ...]  # inventory(): shared, read only


class VirtHost(SnapshotDisks):
    """Virtual machines on the libvirt connection ``uri``.

    ``domain_type`` is "auto" (kvm when libvirt offers it for x86_64 guests, else qemu), "kvm",
    or "qemu" (TCG emulation). If libvirtd restarts, the next call reconnects, waiting at most
    ``reconnect_timeout`` seconds, and is retried once. The snapshot and disk-merge methods
    come from ``vsms.virt.snaphost.SnapshotDisks``.
    """

    def __init__(self, uri: str, domain_type: str = "auto", *,
                 reconnect_timeout: float = 10.0, instance: str | None = None) -> None:
        self._domain_type = caps.check_requested(domain_type)
        self.instance = instance.upper() if instance is not None else None
        self._cache = SystemCache(self.instance)
        self._states = LiveStates()  # run states kept by lifecycle events (inventory())
        # inventory()'s last answer and the (cache, states) versions it was made at
        self._inventory: tuple[tuple[int, int], Inventory] | None = None
        self._conn = Connection(uri, on_domain_changed=self._cache.mark,
                                on_reset=self._reset, reconnect_timeout=reconnect_timeout,
                                on_lifecycle=self._states.mark)
        self.uri = uri
        self.networks = Networks(self._conn)  # the virtual switches (libvirt networks)

    def close(self) -> None:
        """Close the connection; later calls raise SystemNotAvailable. Idempotent."""
        self._conn.close()

    def __enter__(self) -> VirtHost:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _reset(self) -> None:
        self._cache.reset()
        self._states.reset()

    def events_healthy(self) -> bool:
        """Are libvirt's events being delivered: both callbacks registered on the live
        connection and the event loop running? Only then are states served from the table."""
        return self._conn.events_ok and events.loop_alive()

    # -- listing -------------------------------------------------------------------------

    def _refresh(self, conn: Any, domains: list[Any] | None, since: int | None = None) -> None:
        self._cache.refresh(conn, domains, force_resync=not self._conn.events_ok, since=since)

    def list_systems(self) -> list[VirtualSystem]:
        """Every domain that carries our metadata, as a model (sorted by GUID)."""
        return [clone(vs) for vs in self.shared_systems()]

    def shared_systems(self) -> list[VirtualSystem]:
        """What ``list_systems()`` gives, from the same one libvirt call, without copying: the
        cache's own models, which callers read and never change."""
        def work(conn: Any) -> list[VirtualSystem]:
            since = self._cache.seq()
            self._refresh(conn, conn.listAllDomains(0), since)
            return [vs for _, vs in self._cache.shared()]
        return self._conn.run("list the virtual machines", work)

    def cached_systems(self) -> list[VirtualSystem]:
        """``shared_systems()`` from the event-kept cache, without listing every domain (as
        ``macs_in_use`` does): for checks that run on every define (switch ports in use)."""
        def work(conn: Any) -> list[VirtualSystem]:
            self._refresh(conn, None)
            return [vs for _, vs in self._cache.shared()]
        return self._conn.run("list the virtual machines", work)

    def get_system(self, guid: str) -> VirtualSystem | None:
        """The VM with this GUID, or None when there is none (or the domain is not ours)."""
        g = checks.canonical_guid(guid)
        if g is None:
            return None

        def work(conn: Any) -> VirtualSystem | None:
            self._refresh(conn, None)
            self._cache.read_one(conn, g)
            return self._cache.get(g)
        return self._conn.run(f"read virtual machine {g}", work)

    def snapshot_owner(self, snapshot_id: str) -> str | None:
        """The GUID of the VM whose snapshot tree holds the snapshot ``snapshot_id``, or None:
        one index look-up (kept by the cache with each VM's tree), no walk over the VMs."""
        g = checks.canonical_guid(snapshot_id)
        if g is None:
            return None

        def work(conn: Any) -> str | None:
            self._refresh(conn, None)
            return self._cache.snapshot_owner(g)
        return self._conn.run(f"find the virtual machine of snapshot {g}", work)

    def states(self) -> dict[str, EnabledState]:
        """Steady EnabledState of every VM: two libvirt calls whatever the number of VMs (plus
        one re-read per domain whose definition changed since the last call)."""
        def work(conn: Any) -> dict[str, EnabledState]:
            since = self._cache.seq()
            stats = conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE, 0)
            saved = {d.UUIDString().upper() for d in
                     conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE)}
            self._refresh(conn, [dom for dom, _ in stats], since)
            ours = self._cache.guids()
            result = {}
            for dom, values in stats:
                guid = dom.UUIDString().upper()
                if guid in ours:
                    result[guid] = steady_state(values.get("state.state", 0), guid in saved)
            return result
        return self._conn.run("read the states of the virtual machines", work)

    def inventory(self) -> Inventory:
        """Every VM (sorted by GUID) with its steady EnabledState. The models are the cache's
        own: callers read them and never change them (use ``list_systems()`` for copies).

        While libvirt's events are delivered (``events_healthy``) the states come from the
        event-kept table (``vsms.virt.livestates``): no libvirt call when nothing changed, one
        per VM whose lifecycle event arrived since it was last read; and while neither the
        VMs' models nor that table changed since the last answer (their version numbers),
        that very answer (a tuple) is given again, whatever the number of VMs — unless a VM
        was saved (no event tells when its saved state is removed: checked on every read).
        Otherwise, or when many changed, every domain is listed with its state: two libvirt
        calls whatever the number of VMs (what ``list_systems()`` and ``states()`` give
        together)."""
        def work(conn: Any) -> Inventory:
            if self.events_healthy():
                self._refresh(conn, None)
                # read before the answer is made: a change meanwhile makes the next call
                # differ, never an old answer be kept
                versions = (self._cache.version(), self._states.version())
                last = self._inventory
                if last is not None and last[0] == versions:
                    return last[1]
                shared = self._cache.shared()
                kept = self._states.steady(conn, [g for g, _ in shared])
                if kept is not None:
                    out = tuple((vs, kept[g]) for g, vs in shared if g in kept)
                    if EnabledState.SUSPENDED not in kept.values():
                        self._inventory = (versions, out)
                    return out
            since = self._cache.seq()
            listing = self._states.listing(conn)
            self._refresh(conn, listing.domains, since)
            return tuple((vs, listing.states[g]) for g, vs in self._cache.shared()
                         if g in listing.states)
        return self._conn.run("list the virtual machines and their states", work)

    def cached_state(self, guid: str) -> EnabledState:
        """``state(guid)`` from the event-kept table when events are delivered (for reading
        an instance; operations that act on a state use ``state``)."""
        g = checks.canonical_guid(guid)
        if g is not None and self.events_healthy():
            def work(conn: Any) -> EnabledState | None:
                self._refresh(conn, None)
                self._cache.read_one(conn, g)
                if not self._cache.is_ours(g):
                    return None
                return (self._states.steady(conn, [g]) or {}).get(g)
            found = self._conn.run(f"read the state of VM {g}", work)
            if found is not None:
                return found
        return self.state(guid)

    def statistics(self, groups: int = 0, *, agent: bool = False
                   ) -> list[tuple[VirtualSystem, stats.DomainStats]]:
        """Every VM (sorted by GUID; shared models, read only) with its run-time statistics
        (``groups``: ``stats.CPU`` | ``stats.BALLOON``), from three libvirt calls whatever the
        number of VMs (two without groups or running VMs); ``agent`` adds one guest-agent call
        per running VM (vsms.virt.stats)."""
        def work(conn: Any) -> list[tuple[VirtualSystem, stats.DomainStats]]:
            since = self._cache.seq()
            raw, saved = stats.read_all(conn)
            self._refresh(conn, [dom for dom, _ in raw], since)
            shared = self._cache.shared()
            running = stats.read_running(conn, raw, {g for g, _ in shared}, groups)
            return stats.combine(shared, raw, running, saved, stats.run_dir(self.uri),
                                 agent=agent)
        return self._conn.run("read the statistics of the virtual machines", work)

    def screenshot(self, guid: str) -> tuple[str, bytes]:
        """(MIME type, image) of the screen of a running VM; InvalidState when it is off."""
        shot: tuple[str, bytes] = self._act(guid, "take a picture of the screen of",
                                            stats.screenshot)
        return shot

    def state(self, guid: str) -> EnabledState:
        """Steady EnabledState of one VM; NotFound when there is no such VM."""
        state: EnabledState = self._act(guid, "read the state of", lambda _d, st, _l: st)
        return state

    def paths_in_use(self) -> dict[str, str]:
        """Real path of every image (disks and DVD media) of every VM → that VM's GUID, from
        the cache's index (no libvirt call unless events say something changed)."""
        def work(conn: Any) -> dict[str, str]:
            self._refresh(conn, None)
            return self._cache.paths_in_use()
        return self._conn.run("list the images in use", work)

    def macs_in_use(self) -> frozenset[str]:
        """The MAC address (upper case) of every network adapter of every VM, from the index."""
        def work(conn: Any) -> frozenset[str]:
            self._refresh(conn, None)
            return self._cache.macs_in_use()
        return self._conn.run("list the MAC addresses in use", work)

    def held_ports(self) -> HeldPorts:
        """The switch ports every VM's adapters hold, from the cache's index (refreshed as
        ``macs_in_use`` is): each question costs the same whatever the number of VMs."""
        def work(conn: Any) -> HeldPorts:
            self._refresh(conn, None)
            return self._cache.held_ports()
        return self._conn.run("list the switch ports in use", work)

    # -- definition ----------------------------------------------------------------------

    def limits(self) -> checks.Limits:
        """The most one VM may have here (virtual processors, memory), from libvirt."""
        def work(conn: Any) -> checks.Limits:
            domain_type, _ = self._resolve(conn)
            return self._conn.limits(conn, domain_type)
        return self._conn.run("read the host's limits", work)

    def check(self, vs: VirtualSystem) -> checks.Checked:
        """``vs`` checked against every rule with this host's limits, ready for ``define``;
        InvalidParameter listing every broken rule."""
        return checks.check(vs, self.limits())

    def _resolve(self, conn: Any) -> tuple[str, str | None]:
        return caps.resolve(self._domain_type, self._conn.capabilities(conn), self.uri)

    def define(self, vs: VirtualSystem | checks.Checked) -> None:
        """Create the VM, or replace its definition; on failure the previous one stays.

        ``vs`` is checked here unless it is what ``check`` returned (each definition is
        checked once). A running VM keeps running; the new definition applies from its next
        start.
        """
        checked = vs if isinstance(vs, checks.Checked) else self.check(vs)
        guid = checked.guid

        def work(conn: Any) -> None:
            domain_type, emulator = self._resolve(conn)
            xml = domxml.build(checked.vs, guid, domain_type, emulator, self.instance or "")
            self._refuse_foreign(conn, guid)
            # No schema validation flag: libvirt's own parser names the actual cause
            # (e.g. an unknown disk format), which the schema error would hide.
            dom = conn.defineXML(xml)
            self._cache.store_xml(guid, dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        self._conn.run(f"define virtual machine '{checked.vs.name}' ({guid})", work)

    def _refuse_foreign(self, conn: Any, guid: str) -> None:
        try:
            existing = conn.lookupByUUIDString(guid)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return
            raise
        owner = domxml.read(existing.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).owner
        # ours, even with damaged metadata: redefining repairs it
        if owner is not None and (self.instance is None or owner == self.instance):
            return
        raise InUse(f"cannot define virtual machine {guid}: {GUID_TAKEN}; give the virtual "
                    "machine a new GUID")

    def guid_taken(self, guid: str) -> bool:
        """Does any libvirt domain use this GUID, whoever manages it? (libvirt UUIDs are
        global: a VM of another instance blocks the GUID here too.)"""
        g = checks.canonical_guid(guid)
        if g is None:
            return False

        def work(conn: Any) -> bool:
            try:
                conn.lookupByUUIDString(g)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return False
                raise
            return True
        return self._conn.run(f"look up GUID {g}", work)

    def unowned(self) -> list[str]:
        """GUIDs of domains with vsms metadata that names no instance (see vsms.virt.adopt)."""
        def work(conn: Any) -> list[str]:
            self._refresh(conn, conn.listAllDomains(0), self._cache.seq())
            return self._cache.unowned()
        return self._conn.run("list the domains no vsms instance owns", work)

    def adopt(self, name: str) -> Adoption:
        """Make the libvirt domain ``name`` (a name or UUID) one of this instance's VMs
        (see ``vsms.virt.adopt``); NotFound when there is none, InUse when another instance
        owns it, InvalidParameter when vsms cannot represent it."""
        if self.instance is None:
            raise InvalidParameter("adopting a domain needs the instance ID of a vsms")
        instance = self.instance

        def work(conn: Any) -> Adoption:
            try:
                dom = (conn.lookupByUUIDString(name) if checks.canonical_guid(name)
                       else conn.lookupByName(name))
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
                raise NotFound(f"there is no libvirt domain {name!r} on {self.uri}: "
                               "see `virsh list --all`") from None
            guid = dom.UUIDString().upper()
            label = f"libvirt domain '{dom.name()}' ({guid})"
            xml, kind = adopted_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), instance, label)
            if xml:
                new = conn.defineXML(xml)
                self._cache.store_xml(guid, new.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            return Adoption(guid, dom.name(), kind)
        return self._conn.run(f"adopt libvirt domain {name!r}", work)

    def undefine(self, guid: str) -> None:
        """Remove the VM: turned off first if it runs, its saved state and libvirt-owned files
        (NVRAM, snapshot metadata) dropped. Disk images are never deleted."""
        def act(dom: Any, _state: EnabledState, _label: str) -> None:
            if dom.isActive():
                dom.destroy()
            try:
                dom.undefineFlags(_UNDEFINE_ALL)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() not in _UNSUPPORTED_FLAGS:
                    raise
                dom.undefineFlags(_UNDEFINE_BASIC)
            self._cache.drop(dom.UUIDString().upper())
        self._act(guid, "undefine", act)

    # -- state changes -------------------------------------------------------------------

    def _label(self, guid: str) -> str:
        name = self._cache.name_of(guid)
        return f"VM '{name}' ({guid})" if name is not None else f"VM {guid}"

    def _act(self, guid: str, verb: str, action: Callable[[Any, EnabledState, str], Any]) -> Any:
        g = checks.canonical_guid(guid)
        if g is None:
            raise NotFound(f"cannot {verb} VM {guid!r}: it is not a GUID; pass the GUID of "
                           "an existing virtual machine")

        def work(conn: Any) -> Any:
            self._refresh(conn, None)
            self._cache.read_one(conn, g)
            if not self._cache.is_ours(g):
                raise NotFound(f"cannot {verb} VM {g}: there is no virtual machine with this "
                               f"GUID on {self.uri}; list the virtual machines and use an "
                               "existing GUID")
            dom = conn.lookupByUUIDString(g)
            return action(dom, self._states.observe(dom), self._label(g))
        return self._conn.run(f"{verb} {self._label(g)}", work)

    def _change(self, guid: str, verb: str, allowed: Collection[EnabledState],
                call: Callable[[Any, EnabledState], object], hint: str = "") -> None:
        def act(dom: Any, state: EnabledState, label: str) -> None:
            if state not in allowed:
                extra = f"; {hint}" if hint else ""
                raise InvalidState(f"cannot {verb} {label}: {describe(state)}{extra}")
            call(dom, state)
            self._states.observe(dom)  # shown at once, before the event arrives
        self._act(guid, verb, act)

    def start(self, guid: str) -> None:
        """Turn the VM on; from SUSPENDED this restores the saved state."""
        self._change(guid, "start", (EnabledState.DISABLED, EnabledState.SUSPENDED),
                     lambda dom, _s: dom.create(), "only a turned-off or saved VM can start")

    def turn_off(self, guid: str) -> None:
        """Hard power-off; from SUSPENDED this discards the saved state."""
        def off(dom: Any, state: EnabledState) -> None:
            if state is EnabledState.SUSPENDED:
                dom.managedSaveRemove(0)
            else:
                dom.destroy()
        self._change(guid, "turn off", (EnabledState.ENABLED, EnabledState.PAUSED,
                                        EnabledState.STOPPING, EnabledState.SUSPENDED), off)

    def pause(self, guid: str) -> None:
        self._change(guid, "pause", (EnabledState.ENABLED,), lambda dom, _s: dom.suspend(),
                     "only a running VM can be paused")

    def resume(self, guid: str) -> None:
        def wake(dom: Any, _state: EnabledState) -> None:
            if dom.state()[0] == libvirt.VIR_DOMAIN_PMSUSPENDED:
                dom.pmWakeup(0)
            else:
                dom.resume()
        self._change(guid, "resume", (EnabledState.PAUSED,), wake,
                     "only a paused VM can be resumed")

    def save(self, guid: str) -> None:
        """Save the memory to disk (libvirt managed save) and stop; ``start`` restores it."""
        self._change(guid, "save", (EnabledState.ENABLED, EnabledState.PAUSED),
                     lambda dom, _s: dom.managedSave(libvirt.VIR_DOMAIN_SAVE_RUNNING),
                     "only a running or paused VM can be saved")

    def reset(self, guid: str) -> None:
        """Hard reset of a running VM."""
        self._change(guid, "reset", (EnabledState.ENABLED,), lambda dom, _s: dom.reset(0),
                     "only a running VM can be reset")

    def discard_saved_state(self, guid: str) -> None:
        self._change(guid, "discard the saved state of", (EnabledState.SUSPENDED,),
                     lambda dom, _s: dom.managedSaveRemove(0), "only a saved VM has one")
