"""The run states of the VMs, kept by libvirt's lifecycle events instead of a listing per read.

Each entry is what one read of a domain's state gave: libvirt's raw state, whether a managed
save image existed, and the event count when that read *began*. Every lifecycle event of a
domain (started, stopped, paused, resumed, saved, crashed, shut down, defined, undefined, ...)
bumps the count and records it against that domain's GUID; an entry is valid while no event of
its domain arrived after its read began, and while no reset happened since (a new libvirt
connection: events may have been lost in between). A read that began before a later one never
replaces it. So an entry is never older than the last event libvirt delivered for its domain:
a change made through another connection (``virsh start``) shows as soon as its event arrives,
and one made by vsms shows at once, because vsms reads the state again after each change it
makes (``VirtHost``) and that read replaces the entry.

libvirt emits no event when a managed save image is removed (``virsh managedsave-remove``), so
a saved domain's entry is checked against the managed-save listing (one call, listing only the
saved domains) before it is served.

Thread-safe; ``mark`` and ``reset`` run on libvirt's event thread and never block on libvirt.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import libvirt

from vsms.cim.enums import EnabledState
from vsms.virt.states import steady_state

MARKS = 8192  # event marks kept at most (see mark)
FEW = 32  # at most this many domains are read one by one; more, and all are listed


@dataclass(frozen=True)
class Observed:
    raw: int  # libvirt's virDomainState
    saved: bool  # a managed save image existed
    begun: int  # the event count when the read began


@dataclass
class Listing:
    domains: list[Any]  # every domain libvirt has
    states: dict[str, EnabledState]  # GUID -> steady state


class LiveStates:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0  # lifecycle events and resets so far
        self._floor = 0  # entries whose read began before this are void (a reset)
        self._last_event: dict[str, int] = {}  # GUID -> count at its last event
        self._entries: dict[str, Observed] = {}
        self._version = 0  # bumped by every change of the above (see version)

    # -- from libvirt's event thread ---------------------------------------------------------

    def mark(self, guid: str) -> None:
        """A lifecycle event of this domain arrived: entries read before it are void."""
        g = guid.upper()
        with self._lock:
            self._count += 1
            if self._shown(g, self._entries.get(g)) is not None:
                self._version += 1  # it voids a valid entry (else valid() answers the same)
            self._last_event[g] = self._count
            if len(self._last_event) > MARKS:  # domains come and go: keep the marks bounded
                self._forget_oldest_marks()

    def _forget_oldest_marks(self) -> None:
        """Drop the older half of the event marks, and the entries of their domains with them
        (a mark may only go with what it voids: those domains are read again)."""
        floor = sorted(self._last_event.values())[len(self._last_event) // 2]
        for g in [g for g, n in self._last_event.items() if n < floor]:
            del self._last_event[g]
            if self._entries.pop(g, None) is not None:
                self._version += 1

    def reset(self) -> None:
        """Events may have been lost (a new connection): every entry is void."""
        with self._lock:
            self._count += 1
            self._version += 1
            self._floor = self._count
            self._last_event.clear()
            self._entries.clear()

    # -- readers -----------------------------------------------------------------------------

    def version(self) -> int:
        """A number that changes whenever what ``valid`` answers may (an event of a domain
        with an entry, a reset, a read recorded, an entry forgotten): equal numbers, equal
        answers from ``valid`` for the same GUIDs."""
        with self._lock:
            return self._version

    def begin(self) -> int:
        """Take this before reading states from libvirt and pass it to ``put``."""
        with self._lock:
            return self._count

    def put(self, guid: str, raw: int, saved: bool, begun: int) -> None:
        """Record what a read that began at ``begun`` saw (an older read never wins)."""
        g = guid.upper()
        with self._lock:
            if begun < self._floor:
                return
            old = self._entries.get(g)
            if old is None or old.begun <= begun:
                new = Observed(raw, saved, begun)
                self._entries[g] = new
                if self._shown(g, old) != self._shown(g, new):
                    self._version += 1

    def _shown(self, g: str, entry: Observed | None) -> tuple[int, bool] | None:
        """What ``valid`` gives of this entry: its state, or None when void (lock held)."""
        if entry is None or entry.begun < max(self._floor, self._last_event.get(g, 0)):
            return None
        return entry.raw, entry.saved

    def valid(self, guids: list[str]) -> tuple[dict[str, Observed], list[str]]:
        """(the valid entries of these GUIDs, the GUIDs without one), in one lock."""
        found: dict[str, Observed] = {}
        missing: list[str] = []
        with self._lock:
            for g in guids:
                entry = self._entries.get(g)
                if (entry is None or entry.begun < self._floor
                        or entry.begun < self._last_event.get(g, 0)):
                    missing.append(g)
                else:
                    found[g] = entry
        return found, missing

    def keep_only(self, guids: set[str], begun: int) -> None:
        """Forget what is known of the domains a listing that began at ``begun`` did not see
        (what happened to them after it began is kept)."""
        with self._lock:
            for g in [g for g, e in self._entries.items() if g not in guids and e.begun <= begun]:
                del self._entries[g]
                self._version += 1
            for g in [g for g, n in self._last_event.items() if g not in guids and n <= begun]:
                del self._last_event[g]
                self._version += 1

    # -- reading libvirt ----------------------------------------------------------------------

    def listing(self, conn: Any) -> Listing:
        """Every domain with its steady state, from two libvirt calls whatever their number
        (the read every enumeration made before; also what fills the table)."""
        begun = self.begin()
        stats = conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE, 0)
        saved = {d.UUIDString().upper() for d in
                 conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE)}
        states: dict[str, EnabledState] = {}
        for dom, values in stats:
            guid = dom.UUIDString().upper()
            raw = values.get("state.state", 0)
            self.put(guid, raw, guid in saved, begun)
            states[guid] = steady_state(raw, guid in saved)
        self.keep_only(set(states), begun)
        return Listing([dom for dom, _ in stats], states)

    def observe(self, dom: Any) -> EnabledState:
        """Read one domain's state now and record it; its steady state."""
        begun = self.begin()
        raw: int = dom.state()[0]
        saved = raw == libvirt.VIR_DOMAIN_SHUTOFF and bool(dom.hasManagedSaveImage(0))
        self.put(dom.UUIDString(), raw, saved, begun)
        return steady_state(raw, saved)

    def steady(self, conn: Any, guids: list[str]) -> dict[str, EnabledState] | None:
        """The steady state of these domains from the table, reading the few whose entry is
        void (an event arrived since) one by one; None when more than ``FEW`` are (a listing
        is cheaper then). A domain that vanished meanwhile is left out."""
        found, missing = self.valid(guids)
        if len(missing) > FEW:
            return None
        for guid in missing:
            try:
                dom = conn.lookupByUUIDString(guid)
                begun = self.begin()
                raw = dom.state()[0]
                saved = raw == libvirt.VIR_DOMAIN_SHUTOFF and bool(dom.hasManagedSaveImage(0))
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    continue
                raise
            self.put(guid, raw, saved, begun)
            found[guid] = Observed(raw, saved, begun)
        if any(e.saved for e in found.values()):  # no event says a saved state was removed
            begun = self.begin()
            saved_now = {d.UUIDString().upper() for d in
                         conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE)}
            for guid, entry in list(found.items()):
                if entry.saved and guid not in saved_now:
                    self.put(guid, entry.raw, False, begun)
                    found[guid] = Observed(entry.raw, False, begun)
        return {g: steady_state(e.raw, e.saved) for g, e in found.items()}
