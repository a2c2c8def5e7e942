"""Turns fuzz bytes into an export directory, and a directory into such bytes (for seeds).

The bytes are a list of entries, each ``kind`` (1 byte), name length (2 bytes, big-endian),
name (UTF-8), data length (4 bytes, big-endian), data:

- ``F`` a regular file holding the data; the file ``manifest.sha256`` with the data ``@auto``
  is replaced by a correct manifest of the other files, so fuzzed files get past the checksums
- ``D`` a directory; ``L`` a symbolic link to the data; ``H`` a hard link to the earlier entry
  the data names; ``P`` a FIFO.

Names are made safe (empty, ``.`` and ``..`` components are dropped) so that nothing is ever
written outside the target directory; truncated input ends the list. At most MAX_ENTRIES
entries and MAX_BYTES bytes of file data are written.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
from pathlib import Path

MAX_ENTRIES = 64
MAX_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 8
AUTO = b"@auto"
MANIFEST = "manifest.sha256"


def decode(data: bytes) -> list[tuple[str, str, bytes]]:
    """(kind, name, data) entries, in order; stops at the first truncated entry."""
    entries: list[tuple[str, str, bytes]] = []
    at = 0
    while at + 3 <= len(data) and len(entries) < MAX_ENTRIES:
        kind = chr(data[at])
        (name_len,) = struct.unpack_from(">H", data, at + 1)
        at += 3
        name = data[at:at + name_len].decode("utf-8", "replace")
        at += name_len
        if at + 4 > len(data):
            break
        (size,) = struct.unpack_from(">I", data, at)
        at += 4
        entries.append((kind, name, data[at:at + size]))
        at += size
    return entries


def encode(entries: list[tuple[str, str, bytes]]) -> bytes:
    out = bytearray()
    for kind, name, data in entries:
        raw = name.encode("utf-8")
        out += kind.encode("ascii") + struct.pack(">H", len(raw)) + raw
        out += struct.pack(">I", len(data)) + data
    return bytes(out)


def safe_name(name: str) -> str:
    parts = [p for p in name.replace("\x00", "").split("/") if p not in ("", ".", "..")]
    return "/".join(parts[:MAX_DEPTH])


def _plain_parents(root: Path, name: str) -> bool:
    """True when no folder between ``root`` and ``root/name`` is a symbolic link (so writing
    there cannot land outside ``root``); missing folders are created."""
    folder = root
    for part in name.split("/")[:-1]:
        folder = folder / part
        if folder.is_symlink():
            return False
        if not folder.exists():
            folder.mkdir()
        elif not folder.is_dir():
            return False
    return True


def _write_new(path: Path, payload: bytes) -> None:
    """Create ``path`` with ``payload``; never follows or replaces an existing entry."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(payload)


def materialize(data: bytes, root: Path) -> None:
    """Build the directory ``root`` (which must exist and be empty) from ``data``. Nothing is
    written outside ``root``: no entry is created through a symbolic link."""
    written = 0
    manifest = False
    files: list[str] = []
    for kind, raw_name, payload in decode(data):
        name = safe_name(raw_name)
        if not name:
            continue
        path = root / name
        try:
            if not _plain_parents(root, name):
                continue
            if kind == "D":
                path.mkdir()
            elif kind == "F":
                if name == MANIFEST and payload == AUTO:
                    manifest = True
                    continue
                payload = payload[:max(0, MAX_BYTES - written)]
                written += len(payload)
                _write_new(path, payload)
                files.append(name)
            elif kind == "L":
                os.symlink(payload.decode("utf-8", "replace").replace("\x00", ""), path)
            elif kind == "H":
                source = safe_name(payload.decode("utf-8", "replace"))
                if source and _plain_parents(root, source):
                    os.link(root / source, path, follow_symlinks=False)
            elif kind == "P":
                os.mkfifo(path)
        except (OSError, ValueError):
            continue  # a clash between entries: skip this one
    if manifest:
        lines = []
        for name in sorted(set(files)):
            path = root / name
            if path.is_file() and not path.is_symlink():
                lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {name}\n")
        with contextlib.suppress(OSError):  # an entry already took the name
            _write_new(root / MANIFEST, "".join(lines).encode("utf-8"))


def from_directory(root: Path, *, auto_manifest: bool = True) -> bytes:
    """The bytes that ``materialize`` turns back into ``root`` (regular files and directories)."""
    entries: list[tuple[str, str, bytes]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        for d in dirnames:
            entries.append(("D", os.path.normpath(os.path.join(rel_dir, d)), b""))
        for f in sorted(filenames):
            rel = os.path.normpath(os.path.join(rel_dir, f))
            if rel == MANIFEST and auto_manifest:
                entries.append(("F", rel, AUTO))
            else:
                entries.append(("F", rel, Path(dirpath, f).read_bytes()))
    return encode(entries)
