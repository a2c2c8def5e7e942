"""Walking an export directory and checking the relative paths its files name.

Nothing here follows a symbolic link: links, devices, FIFOs and sockets are reported, not entered.
A regular file with more than one hard link is reported too: it may share its data with a file
outside the export (an in-place import would hand that file to a virtual machine), so an export
must be copied without ``--link``. Mount points inside an export are reported by the reader
(``mount_points``), since a bind mount can show any directory of the host.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from vsms.exportdir.layout import TREE_MAX_ENTRIES

MOUNTINFO = "/proc/self/mountinfo"
_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass
class TreeScan:
    """Result of scan_tree: regular files (relative path -> size), directories, and problems."""

    files: dict[str, int] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


def rel_path_problem(rel: str) -> str | None:
    """Why ``rel`` cannot name a file inside an export, as a clause ("is an absolute path"),
    or None when it is a clean relative path with ``/`` separators."""
    if not rel:
        return "is empty"
    if rel.startswith("/"):
        return "is an absolute path"
    if ".." in rel.split("/"):
        return "contains '..'"
    if any(ch in rel for ch in "\\\n\r\x00"):
        return "contains a backslash, a line break or a NUL character"
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if any(part in ("", ".") for part in rel.split("/")):
        return "has an empty or '.' component"
    return None


def resolves_inside(root: Path, rel: str) -> bool:
    """True when ``root/rel``, with every symbolic link followed, stays under ``root``."""
    base = os.path.realpath(root)
    real = os.path.realpath(os.path.join(base, rel))
    return real == base or real.startswith(base.rstrip("/") + "/")


def mount_points(mountinfo: str = MOUNTINFO) -> list[Path]:
    """Every mount point of this process's mount namespace (empty when it cannot be read)."""
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    found: list[Path] = []
    for line in lines:
        fields = line.split(" ")
        if len(fields) > 4:
            found.append(Path(_OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[4])))
    return found


def mounts_inside(root: Path) -> list[str]:
    """Mount points strictly inside ``root`` (resolved), relative to it, sorted."""
    return sorted(str(m.relative_to(root)) for m in mount_points() if root in m.parents)


def _kind(mode: int) -> str | None:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return "a special file"


def scan_tree(root: Path) -> TreeScan:
    """Every entry under ``root`` (which must be a directory), without following links.

    Relative paths use ``/``. Symbolic links, devices, FIFOs, sockets, files with several hard
    links, unreadable directories and trees with more than TREE_MAX_ENTRIES entries are reported
    in ``problems``.
    """
    scan = TreeScan()
    pending = [""]
    seen = 0
    while pending:
        rel_dir = pending.pop()
        try:
            with os.scandir(os.path.join(root, rel_dir)) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            scan.problems.append(
                f"the directory {rel_dir or '.'!r} cannot be read ({exc.strerror}): "
                "make it readable by the service")
            continue
        for entry in entries:
            seen += 1
            if seen > TREE_MAX_ENTRIES:
                scan.problems.append(
                    f"the export holds more than {TREE_MAX_ENTRIES} files and directories: "
                    "pass the directory of one exported virtual machine")
                return scan
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                scan.problems.append(f"{rel!r} cannot be examined ({exc.strerror}): remove it")
                continue
            kind = _kind(st.st_mode)
            if kind is not None:
                scan.problems.append(
                    f"{rel!r} is {kind}: an export may hold only regular files and directories; "
                    "replace it with a regular file or remove it")
            elif stat.S_ISDIR(st.st_mode):
                scan.dirs.add(rel)
                pending.append(rel)
            else:
                scan.files[rel] = st.st_size
                if st.st_nlink > 1:
                    scan.problems.append(
                        f"{rel!r} has {st.st_nlink} hard links: it may share its data with a "
                        "file outside the export, which an import must never use; copy the "
                        "export without hard links (cp -a, not cp -al) or export again")
    return scan
