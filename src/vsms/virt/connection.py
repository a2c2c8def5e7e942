"""One libvirt connection that reconnects by itself and reports domain definition changes.

``run(what, fn)`` calls ``fn(conn)``; when the call fails because the daemon went away (libvirtd
restarted), the connection is reopened, retrying until ``reconnect_timeout`` seconds have
passed, and ``fn`` runs once more. Any other libvirt error becomes a ``vsms.errors`` class.

Each new connection registers, before anything is read through it, for the lifecycle events
DEFINED/UNDEFINED and for metadata changes; those report the domain's GUID to
``on_domain_changed``; every lifecycle event (state changes too) reports it to ``on_lifecycle``
when given. ``on_reset`` is called whenever a new connection replaces an old one,
since events may have been missed in between.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any, TypeVar

import libvirt

from vsms.errors import SystemNotAvailable
from vsms.mapping.checks import Limits
from vsms.virt import caps, events
from vsms.virt.translate import is_connection_error, message_of, translate, unreachable

log = logging.getLogger(__name__)

T = TypeVar("T")
# events after which a domain's definition is read again: defined / undefined, and started /
# stopped, which are how a transient domain (virsh create) appears and vanishes (no
# DEFINED / UNDEFINED event comes for one); for a persistent domain it is one more read
_DEFINITION_EVENTS = (libvirt.VIR_DOMAIN_EVENT_DEFINED, libvirt.VIR_DOMAIN_EVENT_UNDEFINED,
                      libvirt.VIR_DOMAIN_EVENT_STARTED, libvirt.VIR_DOMAIN_EVENT_STOPPED)
_KEEPALIVE_INTERVAL = 5
_KEEPALIVE_COUNT = 3


class Connection:
    def __init__(self, uri: str, *, on_domain_changed: Callable[[str], None],
                 on_reset: Callable[[], None], reconnect_timeout: float,
                 on_lifecycle: Callable[[str], None] | None = None) -> None:
        events.ensure_event_loop()
        self.uri = uri
        self.reconnect_timeout = reconnect_timeout
        self._on_domain_changed = on_domain_changed
        self._on_reset = on_reset
        self._on_lifecycle = on_lifecycle
        self._lock = threading.Lock()
        self._conn: Any = None
        self._generation = 0
        self._dead_generation = -1
        self._callback_ids: list[int] = []
        self._closed = False
        self._caps: caps.GuestCaps | None = None
        self._limits: dict[str, Limits] = {}
        self.events_ok = False
        with self._lock:
            self._open()

    # -- opening and closing ------------------------------------------------------------

    def _open(self) -> None:
        try:
            conn = libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            raise unreachable(self.uri, message_of(exc)) from exc
        self._generation += 1
        generation = self._generation
        with suppress(libvirt.libvirtError):  # local drivers (test:///) have no keep-alive
            conn.setKeepAlive(_KEEPALIVE_INTERVAL, _KEEPALIVE_COUNT)
        with suppress(libvirt.libvirtError):
            conn.registerCloseCallback(lambda _c, _r, _o: self._closed_by_peer(generation), None)
        ids = []
        for event_id, callback in (
                (libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._lifecycle_event),
                (libvirt.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, self._metadata_event)):
            try:
                ids.append(conn.domainEventRegisterAny(None, event_id, callback, None))
            except libvirt.libvirtError as exc:
                log.warning("libvirt at %s cannot report domain events (%s); the VM list will "
                            "be re-read on every call", self.uri, message_of(exc))
        self._conn = conn
        self._callback_ids = ids
        self._caps = None
        self._limits = {}
        self.events_ok = len(ids) == 2
        self._on_reset()

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        for cid in self._callback_ids:
            with suppress(libvirt.libvirtError):
                conn.domainEventDeregisterAny(cid)
        self._callback_ids = []
        with suppress(libvirt.libvirtError):
            conn.unregisterCloseCallback()
        with suppress(libvirt.libvirtError):
            conn.close()

    def close(self) -> None:
        """Drop the connection and its event registrations; later calls fail. Idempotent."""
        with self._lock:
            self._closed = True
            self._release()

    # -- event callbacks (run on the event-loop thread; must not block) -------------------

    def _closed_by_peer(self, generation: int) -> None:
        self._dead_generation = generation

    def _lifecycle_event(self, _conn: Any, dom: Any, event: int, _detail: int,
                         _opaque: Any) -> None:
        guid = dom.UUIDString().upper()
        if self._on_lifecycle is not None:
            self._on_lifecycle(guid)
        if event in _DEFINITION_EVENTS:
            self._on_domain_changed(guid)

    def _metadata_event(self, _conn: Any, dom: Any, _mtype: int, _nsuri: Any,
                        _opaque: Any) -> None:
        self._on_domain_changed(dom.UUIDString().upper())

    # -- use ------------------------------------------------------------------------------

    def _alive(self) -> bool:
        if self._conn is None or self._dead_generation == self._generation:
            return False
        try:
            return bool(self._conn.isAlive())
        except libvirt.libvirtError:
            return False

    def _reconnect(self) -> None:
        self._release()
        deadline = time.monotonic() + self.reconnect_timeout
        delay = 0.1
        while True:
            try:
                self._open()
                log.info("reconnected to libvirt at %s", self.uri)
                return
            except SystemNotAvailable:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def get(self) -> Any:
        """The live connection, reopened (within the deadline) if the daemon went away."""
        with self._lock:
            if self._closed:
                raise SystemNotAvailable(f"the connection to libvirt at {self.uri} was closed "
                                         "(the service is shutting down)")
            if not self._alive():
                self._reconnect()
            return self._conn

    def run(self, what: str, fn: Callable[[Any], T]) -> T:
        """``fn(conn)``, retried once on a fresh connection if the old one broke."""
        for attempt in (1, 2):
            conn = self.get()
            try:
                return fn(conn)
            except libvirt.libvirtError as exc:
                broken = is_connection_error(exc) or not self._alive()
                if broken and attempt == 1 and not self._closed:
                    log.warning("libvirt at %s dropped the connection (%s); reconnecting",
                                self.uri, message_of(exc))
                    with self._lock:
                        if self._conn is conn:
                            self._dead_generation = self._generation
                    continue
                raise translate(exc, self.uri, what) from exc
        raise AssertionError("unreachable")

    def capabilities(self, conn: Any) -> caps.GuestCaps:
        """The x86_64 guest capabilities of this connection (read once per connection)."""
        if self._caps is None:
            self._caps = caps.parse(conn.getCapabilities(), conn.getType())
        return self._caps

    def limits(self, conn: Any, domain_type: str) -> Limits:
        """The host's limits of one VM of ``domain_type`` (read once per connection)."""
        found = self._limits.get(domain_type)
        if found is None:
            found = self._limits[domain_type] = caps.host_limits(conn, domain_type, self.uri)
        return found
