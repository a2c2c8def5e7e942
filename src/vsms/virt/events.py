"""The libvirt event loop of this process.

libvirt's default event implementation is process-wide by libvirt's own design: it must be
registered exactly once (registering again re-initialises its mutex under a running loop) and
one thread must keep running it, or remote connections lose their keep-alives and no domain
event is ever delivered. ``ensure_event_loop()`` does both, once; it is called before any
connection is opened.

The only module-level object is the lock that serialises that first call; whether the loop
already runs is read from the thread list (the thread never ends), so there is no flag to keep.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import libvirt

log = logging.getLogger(__name__)

_THREAD_NAME = "vsms-libvirt-events"
_START_LOCK = threading.Lock()


def _quiet(_ctx: Any, _err: Any) -> None:
    """libvirt's default handler prints every error on stderr; we raise them instead."""


def _run_forever() -> None:
    while True:
        try:
            if libvirt.virEventRunDefaultImpl() < 0:
                time.sleep(0.1)
        except Exception:  # keep the loop alive: nothing else can restart it
            log.exception("libvirt event loop iteration failed")
            time.sleep(0.1)


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
