"""The libvirt event loop of this process.

libvirt's default event implementation is process-wide by libvirt's own design: it must be
registered exactly once (registering again re-initialises its mutex under a running loop) and
one thread must keep running it, or remote connections lose their keep-alives and no domain
event is ever delivered. ``ensure_event_loop()`` does both, once; it is called before any
connection is opened.

The module-level objects are the lock that serialises that first call and the event that stops
the loop at interpreter exit (an ``atexit`` hook): a daemon thread still inside libvirt's loop
while Python finalises can call back into a half-torn-down interpreter and crash the process.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
from typing import Any

import libvirt

log = logging.getLogger(__name__)

_THREAD_NAME = "vsms-libvirt-events"
_START_LOCK = threading.Lock()
_STOP = threading.Event()
_BEAT = 1.0  # seconds between the loop's heartbeats
_last_beat = [0.0]  # time.monotonic() of the loop's last heartbeat


def _quiet(_ctx: Any, _err: Any) -> None:
    """libvirt's default handler prints every error on stderr; we raise them instead."""


def _run_forever() -> None:
    while not _STOP.is_set():
        try:
            if libvirt.virEventRunDefaultImpl() < 0:
                time.sleep(0.1)
        except Exception:  # keep the loop alive: nothing else can restart it
            log.exception("libvirt event loop iteration failed")
            time.sleep(0.1)


def _wake(timer: int, _opaque: Any) -> None:
    libvirt.virEventRemoveTimeout(timer)


def _heartbeat(_timer: int, _opaque: Any) -> None:
    _last_beat[0] = time.monotonic()


def loop_alive() -> bool:
    """Has the event loop run lately (its heartbeat within a few beats)? When it has not,
    events are not being delivered, whatever the connections registered."""
    return time.monotonic() - _last_beat[0] < 5 * _BEAT


def _stop_at_exit() -> None:
    """Stop the loop thread before the interpreter finalises (bounded wait)."""
    _STOP.set()
    with contextlib.suppress(Exception):  # the loop may be gone already: nothing to wake
        libvirt.virEventAddTimeout(0, _wake, None)  # wake the loop now rather than in 1 s
    for thread in threading.enumerate():
        if thread.name == _THREAD_NAME:
            thread.join(timeout=2.0)


def ensure_event_loop() -> None:
    """Register libvirt's default event loop and start its daemon thread, once per process."""
    with _START_LOCK:
        if any(t.name == _THREAD_NAME for t in threading.enumerate()):
            return
        libvirt.registerErrorHandler(_quiet, None)
        if libvirt.virEventRegisterDefaultImpl() < 0:
            raise RuntimeError("libvirt could not register its default event loop")
        # A periodic timer makes sure the loop wakes up even with nothing else registered,
        # and shows that it still runs (``loop_alive``).
        _last_beat[0] = time.monotonic()
        libvirt.virEventAddTimeout(int(_BEAT * 1000), _heartbeat, None)
        threading.Thread(target=_run_forever, name=_THREAD_NAME, daemon=True).start()
        atexit.register(_stop_at_exit)
