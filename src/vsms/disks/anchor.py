"""Folders opened once, through handles: a path cannot change meaning between check and use.

A job checks its paths in the method call (``StorageRoots.confine``) and uses them seconds or
hours later. Anyone who can write in a storage root could meanwhile rename a folder on the way
and put a symbolic link (or a bind mount) in its place; a job that then used the path would
write, rename or delete outside the roots. So the jobs reach their folders here instead:

* :func:`open_dir` opens a folder component by component from ``/`` with
  ``O_DIRECTORY | O_NOFOLLOW`` (a symbolic link anywhere on the way is refused, ``ELOOP``), and
  below the storage root that holds it refuses a component on another device (a mount point).
  It may create the components that are missing, through a callback that journals each one.
* The returned :class:`Dir` holds the handle; files are then created, renamed and removed
  relative to it (``dir_fd=``), and a program that takes paths (qemu-img, the export writer)
  is given ``/proc/self/fd/N/…``, which the kernel resolves through the open handle, not
  through the folder's name.
* :class:`Identity` (device, inode) is what an undo step records of what it created; it
  removes an entry only when the name still leads, without following links, to that inode.

The roots themselves are resolved once (``realpath``) at start, so a symbolic link inside the
path of a root is never met here.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from vsms.errors import AccessDenied, InvalidParameter

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_RENAME_NOREPLACE = 1


@dataclass(frozen=True)
class Identity:
    """Which file an entry is: its device and inode numbers."""

    dev: int
    ino: int

    @classmethod
    def of(cls, st: os.stat_result) -> Identity:
        return cls(st.st_dev, st.st_ino)


class Dir:
    """An open folder handle and the (resolved) path it was reached by. Close it when done."""

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path

    def __enter__(self) -> Dir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    @property
    def identity(self) -> Identity:
        return Identity.of(os.fstat(self.fd))

    def proc(self, name: str = "") -> str:
        """A path to ``name`` in this folder that the kernel resolves through the handle."""
        base = f"/proc/self/fd/{self.fd}"
        return f"{base}/{name}" if name else base

    def lstat(self, name: str) -> os.stat_result:
        """``fstatat(fd, name, AT_SYMLINK_NOFOLLOW)``."""
        return os.stat(name, dir_fd=self.fd, follow_symlinks=False)

    def child(self, name: str) -> Dir:
        """Open the sub-folder ``name`` (not through a symbolic link)."""
        return Dir(os.open(name, _DIR_FLAGS, dir_fd=self.fd), os.path.join(self.path, name))


MakeDir = Callable[[Dir, str], None]
"""Creates the missing folder ``name`` in the open folder (and journals it)."""


def _changed(path: str, part: str, why: str) -> AccessDenied:
    return AccessDenied(
        f"the folder {path} changed after it was checked: {part} {why}; nothing was written "
        "there. Symbolic links and mount points are not followed inside the storage roots: "
        "find out what replaced the folder and run the operation again")


def open_dir(path: str | Path, roots: Iterable[Path] = (), *,
             make: MakeDir | None = None) -> Dir:
    """Open the folder ``path`` (absolute, resolved) without following any symbolic link.

    When ``roots`` are given, ``path`` must lie under one of them and no component below the
    deepest such root may be on another device. Missing components are created by ``make``
    when it is given (it must create exactly that folder), refused otherwise. Raises
    AccessDenied when the path no longer leads where it did (a link, a mount, not a folder)
    and FileNotFound-like InvalidParameter when a component is missing.
    """
    text = os.path.normpath(str(path))
    if not os.path.isabs(text):
        raise InvalidParameter(f"{text!r} is not an absolute path (a vsms bug)")
    parts = [p for p in text.split("/") if p]
    holders = [r for r in roots if text == str(r) or text.startswith(str(r).rstrip("/") + "/")]
    root_depth = max((len(Path(r).parts) - 1 for r in holders), default=None)
    if roots and root_depth is None:
        raise AccessDenied(f"{text} is outside the storage roots")
    d = Dir(os.open("/", _DIR_FLAGS), "/")
    root_dev: int | None = None
    try:
        for depth, part in enumerate(parts, start=1):
            if root_depth is not None and depth - 1 == root_depth:
                root_dev = os.fstat(d.fd).st_dev
            try:
                nxt = d.child(part)
            except FileNotFoundError:
                if make is None:
                    raise InvalidParameter(
                        f"the folder {os.path.join(d.path, part)} does not exist (any more): "
                        "create it and run the operation again") from None
                make(d, part)
                nxt = d.child(part)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _changed(text, os.path.join(d.path, part),
                                   "is a symbolic link or not a folder") from None
                raise
            d.close()
            d = nxt
            if root_dev is not None and os.fstat(d.fd).st_dev != root_dev:
                raise _changed(text, d.path, "is a mount point")
        return d
    except BaseException:
        d.close()
        raise


def open_parent(path: str | Path, roots: Iterable[Path] = (), *,
                make: MakeDir | None = None) -> tuple[Dir, str]:
    """``open_dir`` of the folder of ``path``, and the last component of ``path``."""
    text = os.path.normpath(str(path))
    return open_dir(os.path.dirname(text), roots, make=make), os.path.basename(text)


def same_file(d: Dir, name: str, ident: Identity) -> bool:
    """True when ``name`` in ``d`` is, without following a link, the file ``ident``."""
    try:
        return Identity.of(d.lstat(name)) == ident
    except FileNotFoundError:
        return False


def _load_renameat2() -> Callable[[int, bytes, int, bytes, int], int] | None:
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_RENAMEAT2 = _load_renameat2()  # a function, loaded once; never changes


def rename_noreplace(src_dir: Dir, src: str, dst_dir: Dir, dst: str) -> None:
    """Rename ``src`` to ``dst`` between two open folders; FileExistsError if ``dst`` exists.

    ``renameat2(RENAME_NOREPLACE)``; where the kernel or file system lacks it, a check and a
    plain rename (the window is then the file system's, not ours to close)."""
    if _RENAMEAT2 is not None:
        if _RENAMEAT2(src_dir.fd, os.fsencode(src), dst_dir.fd, os.fsencode(dst),
                      _RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(code, os.strerror(code), dst)
    try:
        dst_dir.lstat(dst)
    except FileNotFoundError:
        os.rename(src, dst, src_dir_fd=src_dir.fd, dst_dir_fd=dst_dir.fd)
        return
    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst)


def remove_file(d: Dir, name: str, ident: Identity | None) -> bool:
    """Unlink ``name`` in ``d`` if it is the file ``ident`` (None: only an empty regular file
    of ours). Returns whether it was removed; a missing entry is not an error."""
    try:
        st = d.lstat(name)
    except FileNotFoundError:
        return False
    if ident is not None and Identity.of(st) != ident:
        return False
    if ident is None and not (stat.S_ISREG(st.st_mode) and st.st_size == 0
                              and st.st_uid == os.geteuid()):
        return False
    if stat.S_ISDIR(st.st_mode):
        return False
    os.unlink(name, dir_fd=d.fd)
    return True


def _empty(d: Dir) -> None:
    """Remove everything inside the open folder ``d``, following no link."""
    for entry in list(os.scandir(d.fd)):
        if entry.is_dir(follow_symlinks=False):
            with d.child(entry.name) as sub:
                _empty(sub)
            os.rmdir(entry.name, dir_fd=d.fd)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.name, dir_fd=d.fd)


def remove_tree(d: Dir, name: str, ident: Identity | None) -> bool:
    """Remove the folder (or file) ``name`` in ``d`` with its content if it is ``ident``
    (None: only an empty folder of ours). Returns whether it was removed."""
    try:
        st = d.lstat(name)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        return remove_file(d, name, ident) if ident is not None else False
    if ident is None:
        if st.st_uid != os.geteuid():
            return False
        try:
            os.rmdir(name, dir_fd=d.fd)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.EBUSY):
                return False
            raise
        return True
    if Identity.of(st) != ident:
        return False
    try:
        sub = d.child(name)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
            return False  # replaced in between: not ours any more
        raise
    with sub:
        if sub.identity != ident:
            return False
        _empty(sub)
    if not same_file(d, name, ident):
        return False
    os.rmdir(name, dir_fd=d.fd)
    return True
