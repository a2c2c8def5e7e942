"""Confinement: every path a client sends must resolve, symlinks included, under a storage root."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from vsms.errors import AccessDenied, InvalidParameter


class StorageRoots:
    """The configured storage roots, resolved once."""

    def __init__(self, roots: Iterable[Path]) -> None:
        self.roots = tuple(Path(os.path.realpath(r)) for r in roots)

    def contains(self, path: Path) -> bool:
        return any(path == r or r in path.parents for r in self.roots)

    def confine(self, raw: str, what: str) -> Path:
        """Resolve ``raw`` (a client-supplied path; need not exist yet) and check it.

        Raises InvalidParameter for an empty or relative path and AccessDenied when the resolved
        path (after following every symlink and ``..``) is outside all storage roots.
        """
        if not isinstance(raw, str) or not raw.strip():
            raise InvalidParameter(f"{what} is empty: pass a fully qualified path")
        if "\x00" in raw:
            raise InvalidParameter(f"{what} contains a NUL character")
        if not os.path.isabs(raw):
            raise InvalidParameter(
                f"{what} {raw!r} is not a fully qualified path: pass an absolute path")
        resolved = Path(os.path.realpath(raw))
        if not self.contains(resolved):
            roots = ", ".join(str(r) for r in self.roots)
            shown = raw if str(resolved) == raw else f"{raw} (resolves to {resolved})"
            raise AccessDenied(
                f"{what} {shown} is outside the storage roots ({roots}): "
                "use a path under a storage root or add a root with --storage-root")
        return resolved
