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
        # A periodic timer makes sure the loop wakes up even with nothing else registered.
        libvirt.virEventAddTimeout(1000, lambda _timer, _opaque: None, None)
        threading.Thread(target=_run_forever, name=_THREAD_NAME, daemon=True).start()
        atexit.register(_stop_at_exit)
