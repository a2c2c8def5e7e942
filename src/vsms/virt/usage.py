"""Which VM uses each image file, each MAC address and each snapshot GUID, kept up to date
one VM at a time.

The cache (``vsms.virt.cache``) adds a VM's model when it reads or defines it and removes it
when the model is replaced or the domain goes, so answering "who uses this disk?" or "which
MACs are taken?" costs nothing per VM on the host. The real path (symlinks resolved) of an image
is computed the first time it is asked for and kept while some VM still names that path: a
symlink changed later under a path a VM already uses is not noticed until the VM is re-read.
The disk images a VM's snapshots froze count as used by that VM, and each snapshot's GUID
leads to its VM (the scope filter and the snapshot methods find a snapshot's VM without
walking every VM). Not thread-safe: the cache
calls it under its own lock.
"""

from __future__ import annotations

import os

from vsms.model.vm import Media, VirtualSystem


def _images(vs: VirtualSystem) -> list[Media]:
    """The VM's media and the disks its snapshots froze (in use as long as they exist)."""
    return [*vs.media, *(m for s in vs.snapshots for m in s.config.disk_media())]


class UsageIndex:
    def __init__(self) -> None:
        self._paths: dict[str, set[str]] = {}  # image path as the domain names it -> GUIDs
        self._macs: dict[str, set[str]] = {}  # MAC (upper case) -> GUIDs
        self._real: dict[str, str] = {}  # image path -> its real path, once asked for
        self._snapshots: dict[str, str] = {}  # snapshot GUID (upper case) -> its VM's GUID

    def add(self, guid: str, vs: VirtualSystem) -> None:
        for m in _images(vs):
            self._paths.setdefault(m.path, set()).add(guid)
        for n in vs.nics:
            if n.mac:
                self._macs.setdefault(n.mac.upper(), set()).add(guid)
        for snap in vs.snapshots:
            self._snapshots[snap.id.upper()] = guid

    def remove(self, guid: str, vs: VirtualSystem) -> None:
        for m in _images(vs):
            _drop(self._paths, m.path, guid)
            if m.path not in self._paths:
                self._real.pop(m.path, None)
        for n in vs.nics:
            if n.mac:
                _drop(self._macs, n.mac.upper(), guid)
        for snap in vs.snapshots:
            if self._snapshots.get(snap.id.upper()) == guid:
                del self._snapshots[snap.id.upper()]

    def clear(self) -> None:
        self._paths.clear()
        self._macs.clear()
        self._real.clear()
        self._snapshots.clear()

    def macs(self) -> frozenset[str]:
        return frozenset(self._macs)

    def snapshot_owner(self, snapshot_id: str) -> str | None:
        """The GUID of the VM whose tree holds the snapshot ``snapshot_id`` (None: none)."""
        return self._snapshots.get(snapshot_id.upper())

    def paths(self) -> dict[str, str]:
        """Real path of every image in use -> the GUID of a VM using it (the smallest GUID when
        several do)."""
        out: dict[str, str] = {}
        for path, guids in self._paths.items():
            real = self._real.get(path)
            if real is None:
                real = self._real[path] = os.path.realpath(path)
            owner = min(guids)
            if out.get(real, owner) >= owner:
                out[real] = owner
        return out


def _drop(table: dict[str, set[str]], key: str, guid: str) -> None:
    users = table.get(key)
    if users is not None:
        users.discard(guid)
        if not users:
            del table[key]
