"""Confinement: every path a client sends must resolve, symlinks included, under a storage root.

Three rules, checked by :meth:`StorageRoots.confine`:

1. The path, with every symbolic link and ``..`` resolved, lies under a storage root. A path
   that does not is refused with one fixed message that repeats only what the client sent.
2. Between that root and the path there is no mount point: a bind mount (or any other mount)
   inside a storage root could show files from anywhere, and ``realpath`` cannot see through it.
   A file system mounted inside a root is usable when it is configured as a root of its own.
3. An existing qcow2 image names no file outside the roots: its backing file (and that file's
   own backing chain) must obey rules 1 and 2, protocol names such as ``json:{...}`` or
   ``nbd:...`` are refused, and so is an external data file outside the roots.

Paths need not exist yet (targets of a copy or a new disk).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from vsms.disks.qemuimg import referenced_files
from vsms.errors import AccessDenied, InvalidParameter
from vsms.exportdir.tree import mount_points
from vsms.operations.reservations import Targets

MAX_BACKING_CHAIN = 16
"""Longest qcow2 backing chain followed before the image is refused."""


def has_protocol(name: str) -> bool:
    """True when QEMU would read ``name`` as ``protocol:rest`` (a colon before any slash)."""
    colon, slash = name.find(":"), name.find("/")
    return colon >= 0 and (slash < 0 or colon < slash)


class StorageRoots:
    """The configured storage roots, resolved once."""

    def __init__(self, roots: Iterable[Path]) -> None:
        self.roots = tuple(Path(os.path.realpath(r)) for r in roots)
        self.targets = Targets()  # the paths running jobs will create (one table for all)

    def contains(self, path: Path) -> bool:
        """True when the resolved ``path`` is a root or lies under one (no mount check)."""
        return any(path == r or r in path.parents for r in self.roots)

    def crossed_mount(self, path: Path) -> Path | None:
        """A mount point between ``path`` (resolved, inside a root) and every root holding it,
        or None when some root holds ``path`` without a mount point in between."""
        mounts = mount_points()
        crossed: Path | None = None
        for root in self.roots:
            if not (path == root or root in path.parents):
                continue
            inside = [m for m in mounts if root in m.parents and (m == path or m in path.parents)]
            if not inside:
                return None
            crossed = crossed or min(inside, key=lambda m: len(m.parts))
        return crossed

    def confine(self, raw: str, what: str) -> Path:
        """Resolve ``raw`` (a client-supplied path; need not exist yet) and check it.

        Raises InvalidParameter for an empty or relative path, a damaged qcow2 header or a
        backing chain that loops or is longer than MAX_BACKING_CHAIN, and AccessDenied when the
        resolved path (after following every symlink and ``..``) is outside all storage roots,
        reaches its root through a mount point, or is a qcow2 image naming a file that breaks
        these rules or a protocol.
        """
        if not isinstance(raw, str) or not raw.strip():
            raise InvalidParameter(f"{what} is empty: pass a fully qualified path")
        if "\x00" in raw:
            raise InvalidParameter(f"{what} contains a NUL character")
        if not os.path.isabs(raw):
            raise InvalidParameter(
                f"{what} {raw!r} is not a fully qualified path: pass an absolute path")
        resolved = self._inside(raw, what, raw)
        self._check_image(resolved, what, raw, [resolved])
        return resolved

    def _roots_text(self) -> str:
        return ", ".join(str(r) for r in self.roots)

    def _inside(self, name: str, what: str, raw: str, via: str = "") -> Path:
        """Rules 1 and 2 for ``name``; ``via`` says which file of ``raw`` it is, if not raw.

        A refusal repeats only what the client sent (and, for a file an image names, that
        name): never where a path leads outside the roots, which could name other processes'
        files (``/proc/<pid>/fd/<n>``). A path that cannot be resolved (permission denied on
        the way) is refused in the same words.
        """
        subject = f"{what} {raw!r}" if not via else f"{what} {raw!r}{via} {name!r}"
        outside = AccessDenied(
            f"{subject} is outside the storage roots ({self._roots_text()}): use a path under "
            "a storage root or add a root with --storage-root")
        try:
            resolved = Path(os.path.realpath(name))
        except OSError:
            raise outside from None
        if not self.contains(resolved):
            raise outside
        mount = self.crossed_mount(resolved)
        if mount is not None:
            raise AccessDenied(
                f"{subject} reaches {resolved} through the mount point {mount} inside a storage "
                "root: vsms does not follow mounts there (a bind mount can show any file of the "
                f"host); add {mount} as a storage root of its own if it is meant to hold "
                "virtual machine files")
        return resolved

    def _check_image(self, path: Path, what: str, raw: str, chain: list[Path]) -> None:
        """Rule 3 for ``path`` (already confined) and, recursively, its backing chain."""
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                return
        except OSError:
            return  # missing or unreadable: the caller reports it in its own words
        for kind, name in referenced_files(str(path)):
            via = f": its {kind}"
            if not name:
                raise AccessDenied(f"{what} {raw} is a qcow2 image that needs an external data "
                                   "file it does not name: vsms accepts only self-contained "
                                   "images; convert it with qemu-img convert first")
            if has_protocol(name):
                raise AccessDenied(
                    f"{what} {raw}{via} is given as {name[:200]!r}, a protocol name: vsms "
                    "accepts only plain file paths under a storage root; rebase the image "
                    "(qemu-img rebase -u) onto a file path or convert it to a standalone image")
            target = self._inside(os.path.join(os.path.dirname(path), name), what, raw, via)
            if kind != "backing file":
                continue
            if target in chain:
                raise InvalidParameter(f"{what} {raw} has a backing chain that loops back to "
                                       f"{target}: repair the image's backing file")
            if len(chain) > MAX_BACKING_CHAIN:
                raise InvalidParameter(f"{what} {raw} has a backing chain longer than "
                                       f"{MAX_BACKING_CHAIN} images: commit or convert it into "
                                       "a standalone image first")
            self._check_image(target, what, raw, [*chain, target])
