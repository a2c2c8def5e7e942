"""The state directory is private: 0700, everything in it 0600 (directories 0700).

It holds the log (failed-login user names with their source addresses), the database and its
``-wal``/``-shm`` files, the users file, the audit log and the TLS key. ``vsms serve`` creates
it and what it writes there at start-up under umask 077 (:func:`private_umask`), and
:func:`tighten` removes group and other permissions from whatever is already there (left by an
older version or created by hand), saying what it changed.

Storage roots are not private: QEMU runs as another user (libvirt-qemu) and must traverse the
directories to its disk images. A storage root inside the state directory, or the state
directory inside a storage root's path, keeps the directories on the way to the root
traversable; the warning says to keep them apart. :func:`make_storage_roots` creates missing
roots 0755 whatever the umask.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

PRIVATE_UMASK = 0o077


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Files and directories created inside get no group or other permissions."""
    old = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(old)


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def tighten(state_dir: Path, storage_roots: Sequence[Path],
            leave: Sequence[Path] = ()) -> tuple[list[str], list[str]]:
    """Create ``state_dir`` (0700) if needed and take group/other permissions from it and
    everything below it, except storage roots, the directories on the way to them and the
    files in ``leave`` (the users file: a users file others could read is refused at start, so
    that its passwords are changed, not quietly kept). Returns (what was changed, warnings),
    for the log."""
    state = Path(os.path.abspath(state_dir))
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    roots = [Path(os.path.abspath(r)) for r in storage_roots]
    on_the_way = {p for r in roots for p in (r, *r.parents) if _inside(p, state)}
    on_the_way.update(Path(os.path.abspath(p)) for p in leave)
    warnings = [f"storage root {r} is inside the state directory {state}: the directories on "
                f"the way to it stay traversable for QEMU; keep the state directory and the "
                f"storage roots apart" for r in roots if _inside(r, state)]
    changed: list[str] = []
    for top, dirs, files in os.walk(state):
        here = Path(top)
        dirs[:] = [d for d in dirs if here / d not in roots]  # a storage root is not ours
        for name in [".", *dirs, *files]:
            path = here if name == "." else here / name
            if path in on_the_way:
                continue
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode) or not st.st_mode & 0o077:
                continue
            mode = stat.S_IMODE(st.st_mode)
            os.chmod(path, mode & 0o700, follow_symlinks=False)
            changed.append(f"{path.relative_to(state.parent)} {mode:04o}->{mode & 0o700:04o}")
    return changed, warnings


def make_storage_roots(storage_roots: Sequence[Path]) -> None:
    """Create missing storage roots (and missing parents) 0755: QEMU must traverse them."""
    for root in storage_roots:
        missing = [p for p in (Path(root), *Path(root).parents) if not p.exists()]
        for path in reversed(missing):
            with contextlib.suppress(FileExistsError):
                path.mkdir()
            os.chmod(path, 0o755)
