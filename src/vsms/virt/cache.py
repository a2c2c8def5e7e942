"""Parsed VirtualSystems keyed by GUID, so listing does not re-read every domain's XML.

What keeps it current:
* our own ``define``/``undefine`` update it directly;
* libvirt's DEFINED/UNDEFINED lifecycle events and metadata-change events (``virsh define``,
  ``virsh edit``, ``virsh undefine``, ``virsh metadata`` by anyone) mark a GUID dirty, and the
  next read re-reads only that domain;
* every listing call also gets the set of all domain UUIDs from libvirt in the same call it
  needs anyway, so domains that appear or vanish while events were lost are still noticed;
* a new connection (after libvirtd restarted) or a driver without events forces a full re-read.

Domains without our metadata are remembered as foreign so they are not read again, and domains
whose metadata is damaged are remembered as broken (ours, but not listed). With an instance ID
(``vsms serve`` always has one), only domains whose metadata names that instance are ours;
domains of another instance, and those whose metadata names no instance (written before
instance IDs existed), are remembered as others': never listed, read or acted on. Without an
instance ID (tools and tests that look at the whole host) every domain with our metadata is
ours.
All methods are thread-safe; callers get deep copies (made by :func:`clone`), except from
``shared()``, for read-only callers.
"""

from __future__ import annotations

import copy
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import is_dataclass
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar, cast

import libvirt

from vsms.model.vm import VirtualSystem
from vsms.virt import domxml
from vsms.virt.portindex import HeldPorts, PortIndex
from vsms.virt.usage import UsageIndex

log = logging.getLogger(__name__)

READERS = 8  # libvirt calls in flight while many domains are read at once
PARALLEL_FROM = 64  # fewer domains than this are read one after the other
T = TypeVar("T")


_IMMUTABLE = (str, int, float, bool, type(None), datetime, Enum)


def clone(obj: T) -> T:
    """A deep copy of a model object: what ``copy.deepcopy`` returns, several times faster for
    the dataclasses of ``vsms.model`` (lists of flat dataclasses of immutable values), which
    matters when 1,000 VMs are listed. Anything else falls back to ``copy.deepcopy``."""
    if isinstance(obj, _IMMUTABLE):
        return obj
    if type(obj) is list:
        return cast(T, [clone(x) for x in cast(list[Any], obj)])
    state = getattr(obj, "__dict__", None)
    if state is not None and is_dataclass(obj) and not isinstance(obj, type):
        new = object.__new__(type(obj))
        new.__dict__.update({name: value if isinstance(value, _IMMUTABLE) else clone(value)
                             for name, value in state.items()})
        return cast(T, new)
    return copy.deepcopy(obj)


def _fetch_xml(dom: Any) -> tuple[str, str | None]:
    """(GUID, inactive XML) of a domain; None for XML when it vanished meanwhile."""
    guid = dom.UUIDString().upper()
    try:
        return guid, dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return guid, None
        raise


class SystemCache:
    def __init__(self, instance: str | None = None) -> None:
        self.instance = instance.upper() if instance is not None else None
        self._lock = threading.Lock()  # the tables below; held while re-reading domains
        self._ours: dict[str, VirtualSystem] = {}
        self._version = 0  # bumped whenever _ours changes (under _lock; see version)
        self._foreign: set[str] = set()
        self._others: dict[str, str] = {}  # GUID -> owner ("" = none) of vsms domains not ours
        self._broken: dict[str, str] = {}
        self._pending_lock = threading.Lock()  # never held during a libvirt call
        self._dirty: set[str] = set()
        self._resync = True
        self._seq = 0  # bumped by each of our own changes (under _pending_lock)
        self._touched: dict[str, int] = {}  # GUID -> _seq of our last change to it
        self._usage = UsageIndex()  # images and MACs of the models in _ours
        self._ports = PortIndex()  # switch ports the adapters of the models in _ours hold

    # -- called from libvirt's event thread --------------------------------------------

    def mark(self, guid: str) -> None:
        with self._pending_lock:
            self._dirty.add(guid.upper())

    def reset(self) -> None:
        with self._pending_lock:
            self._resync = True

    # -- refreshing ----------------------------------------------------------------------

    def _take_pending(self, force_resync: bool) -> tuple[set[str], bool]:
        with self._pending_lock:
            dirty, self._dirty = self._dirty, set()
            resync, self._resync = self._resync or force_resync, False
        return dirty, resync

    def _give_back(self, dirty: set[str], resync: bool) -> None:
        with self._pending_lock:
            self._dirty |= dirty
            self._resync = self._resync or resync

    def _read(self, dom: Any) -> None:
        guid = dom.UUIDString().upper()
        self._forget(guid)
        try:
            xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return
            raise
        self._store_xml(guid, xml)

    def _read_many(self, doms: list[Any]) -> None:
        """``_read`` each domain; many at once (a cold start, a full re-read) fetch their XML
        over several libvirt calls in flight, which libvirtd answers in parallel, and parse it
        here, one after the other (bench/bench_xml_fetch.py: 0.77x the time of fetching one
        by one for 3,000 domains)."""
        if len(doms) < PARALLEL_FROM:
            for dom in doms:
                self._read(dom)
            return
        with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="vsms-xml") as pool:
            fetched = list(pool.map(_fetch_xml, doms, chunksize=32))
        for guid, xml in fetched:
            self._forget(guid)
            if xml is not None:
                self._store_xml(guid, xml)

    def _store_xml(self, guid: str, xml: str) -> None:
        reading = domxml.read(xml)
        if reading.owner is None:
            self._foreign.add(guid)
        elif self.instance is not None and reading.owner != self.instance:
            self._others[guid] = reading.owner
        elif reading.vs is None:
            log.error("libvirt domain %s carries vsms metadata that cannot be read (%s); "
                      "it is not listed until it is defined again", guid, reading.error)
            self._broken[guid] = reading.error or "unreadable"
        else:
            self._ours[guid] = reading.vs
            self._version += 1
            self._usage.add(guid, reading.vs)
            self._ports.add(guid, reading.vs)

    def _forget(self, guid: str) -> None:
        old = self._ours.pop(guid, None)
        if old is not None:
            self._version += 1
            self._usage.remove(guid, old)
            self._ports.remove(guid, old)
        self._foreign.discard(guid)
        self._others.pop(guid, None)
        self._broken.pop(guid, None)

    def refresh(self, conn: Any, domains: list[Any] | None, *, force_resync: bool,
                since: int | None = None) -> None:
        """Bring the tables up to date.

        ``domains`` is every domain libvirt has (from a listing the caller made anyway), or
        None when the caller has no listing: then only dirty GUIDs are re-read, unless a full
        re-read is due, which lists the domains itself. ``since`` is ``seq()`` taken before
        that listing: what we defined or undefined after it is newer than the listing, and a
        concurrent reader's older listing must not forget or resurrect it.
        """
        with self._lock:
            dirty, resync = self._take_pending(force_resync)
            try:
                recent = self._recent(since) if domains is not None else set()
                if resync:
                    kept = {g: self._ours[g] for g in recent if g in self._ours}
                    self._version += 1
                    self._ours.clear()
                    self._foreign.clear()
                    self._others.clear()
                    self._broken.clear()
                    self._ours.update(kept)
                    self._usage.clear()
                    self._ports.clear()
                    for guid, vs in kept.items():
                        self._usage.add(guid, vs)
                        self._ports.add(guid, vs)
                    if domains is None:
                        domains = conn.listAllDomains(0)
                if domains is not None:
                    present = {d.UUIDString().upper(): d for d in domains}
                    known = self._known()  # once: each GUID below is visited once
                    for guid in known - present.keys() - recent:
                        self._forget(guid)
                    self._read_many([dom for guid, dom in present.items() if guid not in recent
                                     and (guid in dirty or guid not in known)])
                else:
                    for guid in dirty:
                        self._read_by_guid(conn, guid)
            except BaseException:
                self._give_back(dirty, resync)
                raise

    def _known(self) -> set[str]:
        return self._ours.keys() | self._foreign | self._others.keys() | self._broken.keys()

    def _read_by_guid(self, conn: Any, guid: str) -> None:
        try:
            dom = conn.lookupByUUIDString(guid)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise
            self._forget(guid)
            return
        self._read(dom)

    def read_one(self, conn: Any, guid: str) -> None:
        """Read one domain now if the tables know nothing about it (absent: nothing happens)."""
        with self._lock:
            if guid not in self._known():
                self._read_by_guid(conn, guid)

    # -- our own changes -----------------------------------------------------------------

    def store_xml(self, guid: str, xml: str) -> None:
        with self._lock:
            self._forget(guid)
            self._store_xml(guid, xml)
            self._bump(guid)

    def drop(self, guid: str) -> None:
        with self._lock:
            self._forget(guid)
            self._bump(guid)

    def seq(self) -> int:
        """Take this before listing the domains and pass it to ``refresh(since=…)``."""
        with self._pending_lock:
            return self._seq

    def _bump(self, guid: str) -> None:
        with self._pending_lock:
            self._seq += 1
            self._touched[guid.upper()] = self._seq
            if len(self._touched) > 4096:  # keep it small: old changes no longer matter
                floor = self._seq - 1024
                self._touched = {g: s for g, s in self._touched.items() if s > floor}

    def _recent(self, since: int | None) -> set[str]:
        """GUIDs we changed after ``since``: a listing taken before must not undo them."""
        if since is None:
            return set()
        with self._pending_lock:
            return {g for g, s in self._touched.items() if s > since}

    # -- reading -------------------------------------------------------------------------

    def version(self) -> int:
        """A number that changes whenever the listed VMs or their models do: equal numbers,
        equal ``shared()`` (read without the lock: an int is read whole)."""
        return self._version

    def shared(self) -> list[tuple[str, VirtualSystem]]:
        """(GUID, model) of the listed VMs, sorted by GUID: the cached models themselves, not
        copies, for callers that only read them (a model is replaced, never changed, when its
        domain is re-read)."""
        with self._lock:
            return sorted(self._ours.items())

    def macs_in_use(self) -> frozenset[str]:
        """The MAC address (upper case) of every network adapter of the listed VMs."""
        with self._lock:
            return self._usage.macs()

    def held_ports(self) -> HeldPorts:
        """The switch ports the adapters of the listed VMs hold, answered from the index as it
        is when asked (each question takes the lock; the models are shared, read only)."""
        return HeldPorts(self._ports, self._ours, self._lock)

    def paths_in_use(self) -> dict[str, str]:
        """Real path of every image of the listed VMs -> the GUID of a VM using it."""
        with self._lock:
            return self._usage.paths()

    def snapshot_owner(self, snapshot_id: str) -> str | None:
        """The GUID of the listed VM that has the snapshot ``snapshot_id`` (None: none)."""
        with self._lock:
            return self._usage.snapshot_owner(snapshot_id)

    def get(self, guid: str) -> VirtualSystem | None:
        with self._lock:
            vs = self._ours.get(guid)
            return clone(vs) if vs is not None else None

    def name_of(self, guid: str) -> str | None:
        with self._lock:
            vs = self._ours.get(guid)
            return vs.name if vs is not None else None

    def guids(self) -> set[str]:
        """GUIDs of the VMs that are listed (ours, metadata readable)."""
        with self._lock:
            return set(self._ours)

    def is_ours(self, guid: str) -> bool:
        """Ours, including those whose metadata is damaged (they may still be managed)."""
        with self._lock:
            return guid in self._ours or guid in self._broken

    def is_foreign(self, guid: str) -> bool:
        """A domain without vsms metadata (made with virsh, say)."""
        with self._lock:
            return guid in self._foreign

    def unowned(self) -> list[str]:
        """GUIDs of the domains with vsms metadata that names no instance (from before
        instance IDs), which an instance shows only once they are adopted."""
        with self._lock:
            return sorted(g for g, owner in self._others.items() if not owner)
