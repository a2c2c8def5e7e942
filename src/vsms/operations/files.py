"""Files and folders a job creates: reserved exclusively, journaled, undone only if still theirs.

Every entry a job makes is created exclusively (``O_EXCL``, ``mkdir``) relative to a folder
handle (``vsms.disks.anchor``), in three steps:

1. a write-ahead undo record names the folder and the entry, with no identity yet;
2. the entry is created (a name that exists already fails the job: never overwritten, never
   adopted);
3. the record is amended with the entry's device and inode, or with ``made: false`` when the
   entry was not created (a folder that already existed).

Undoing removes the entry only when the name, looked up through a freshly opened handle of its
folder without following links, still leads to the recorded inode. A record left without an
identity (a crash between steps 2 and 3) removes only an empty file or folder owned by the
service's user, which is all such an entry can be.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from vsms.disks import anchor
from vsms.disks.anchor import Dir, Identity
from vsms.errors import AccessDenied, InvalidParameter
from vsms.jobs.undo import UndoStep
from vsms.operations.undo import RemoveFile, RemoveTree


class Journal(Protocol):
    """What these helpers use of a job's context."""

    def add_undo(self, step: UndoStep[Any]) -> int: ...

    def amend_undo(self, seq: int, step: UndoStep[Any]) -> None: ...


def _step(cls: type[RemoveFile], d: Dir, name: str, ident: Identity | None = None, *,
          made: bool = True) -> RemoveFile:
    return cls(d.path, name, ident.dev if ident else None, ident.ino if ident else None, made)


def make_dir(journal: Journal, d: Dir, name: str) -> bool:
    """``mkdir name`` in ``d``, journaled as ``remove_tree``; False when it existed already
    (then nothing of it is ours and its record says so)."""
    seq = journal.add_undo(_step(RemoveTree, d, name))
    try:
        os.mkdir(name, 0o755, dir_fd=d.fd)
    except FileExistsError:
        journal.amend_undo(seq, _step(RemoveTree, d, name, made=False))
        return False
    with d.child(name) as sub:
        st = os.fstat(sub.fd)
        if st.st_uid != os.geteuid() or any(True for _ in os.scandir(sub.fd)):
            journal.amend_undo(seq, _step(RemoveTree, d, name, made=False))
            raise AccessDenied(f"the new folder {sub.path} was replaced by another one right "
                               "after it was created: someone is changing the storage root; "
                               "find out who and run the operation again")
        journal.amend_undo(seq, _step(RemoveTree, d, name, Identity.of(st)))
    return True


def maker(journal: Journal) -> anchor.MakeDir:
    """A ``make`` callback for ``anchor.open_dir`` that journals each folder it creates."""
    def make(d: Dir, name: str) -> None:
        make_dir(journal, d, name)
    return make


def open_target_dir(journal: Journal, path: str | Path, roots: Iterable[Path]) -> Dir:
    """Open (creating what is missing, journaled) the folder ``path`` under the roots."""
    return anchor.open_dir(path, roots, make=maker(journal))


def new_dir(journal: Journal, d: Dir, name: str) -> Dir:
    """Create the new folder ``name`` in ``d`` (it must not exist) and open it."""
    if not make_dir(journal, d, name):
        raise InvalidParameter(f"{os.path.join(d.path, name)} already exists; vsms never "
                               "writes into a folder it did not create: choose another place")
    return d.child(name)


def create_file(journal: Journal, d: Dir, name: str, mode: int = 0o644) -> int:
    """Create the new, empty file ``name`` in ``d`` exclusively; return its open fd (RW).

    Raises InvalidParameter when the name is taken (by anyone: another call, another program)."""
    seq = journal.add_undo(_step(RemoveFile, d, name))
    try:
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     mode, dir_fd=d.fd)
    except FileExistsError:
        journal.amend_undo(seq, _step(RemoveFile, d, name, made=False))
        raise InvalidParameter(
            f"the target {os.path.join(d.path, name)} already exists (it appeared after the "
            "method call checked it); vsms never overwrites a file: choose another target "
            "path") from None
    try:
        journal.amend_undo(seq, _step(RemoveFile, d, name, Identity.of(os.fstat(fd))))
    except BaseException:
        with contextlib.suppress(OSError):
            anchor.remove_file(d, name, Identity.of(os.fstat(fd)))
        os.close(fd)
        raise
    return fd


def check_in_place(path: str | Path, roots: Iterable[Path], fd: int) -> None:
    """Check that ``path`` (what will be registered) still leads, inside the roots and without
    links, to the file open as ``fd`` (what was written)."""
    written = Identity.of(os.fstat(fd))
    try:
        d, name = anchor.open_parent(path, roots)
    except (AccessDenied, InvalidParameter) as exc:
        raise AccessDenied(f"the disk {path} cannot be registered: {exc}") from None
    with d:
        if not anchor.same_file(d, name, written):
            raise AccessDenied(
                f"the disk {path} cannot be registered: the name no longer leads to the file "
                "this job wrote (it was renamed or replaced meanwhile); find out who changes "
                "the storage root and run the operation again")
