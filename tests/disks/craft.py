"""Test-only builders: files qemu-img cannot make (VHD/VHDX differencing disks), damaged images,
and sparse files with known data extents.

The differencing disks start as real dynamic images made by qemu-img; their headers are then
edited the way Hyper-V writes them (VHD: disk type 4, parent name and W2ru/W2ku locators;
VHDX: HasParent flag and a Parent Locator metadata item).
"""

from __future__ import annotations

import errno
import os
import struct
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

MIB = 1024 * 1024
_VHDX_METADATA = uuid.UUID("8b7ca206-4790-4b9a-b8fe-575f050f886e")
_VHDX_FILE_PARAMETERS = uuid.UUID("caa16737-fa36-4d43-b3b6-33f0aa44e76b")
_VHDX_PARENT_LOCATOR = uuid.UUID("a8d35f2d-b30b-454d-abf7-d3d84834ab0c")
_VHDX_PARENT_TYPE = uuid.UUID("b04aefb7-d19e-4a81-b789-25b8e9445913")


def qemu_img(*args: str) -> str:
    done = subprocess.run(["qemu-img", *args], check=True, capture_output=True, text=True,
                          timeout=60)
    return done.stdout


def vhd_checksum(block: bytes | bytearray, at: int) -> int:
    total = sum(block[:at]) + sum(block[at + 4:])
    return ~total & 0xFFFFFFFF


def differencing_vhd(path: Path, size: int, relative: str, absolute: str, name: str) -> None:
    """A VHD differencing disk whose parent locators hold ``relative`` and ``absolute``."""
    qemu_img("create", "-q", "-f", "vpc", "-o", "subformat=dynamic,force_size=on", str(path),
             str(size))
    data = bytearray(path.read_bytes())
    footer = bytearray(data[-512:])
    (header_at,) = struct.unpack_from(">Q", footer, 16)
    header = bytearray(data[header_at:header_at + 1024])
    locators_at = len(data) - 512  # locator data replaces the old footer; a new footer follows
    rel = relative.encode("utf-16-le")
    abs_ = absolute.encode("utf-16-le")
    struct.pack_into(">4sIIIQ", header, 576, b"W2ru", 512, len(rel), 0, locators_at)
    struct.pack_into(">4sIIIQ", header, 600, b"W2ku", 512, len(abs_), 0, locators_at + 512)
    header[64:576] = name.encode("utf-16-be").ljust(512, b"\0")
    struct.pack_into(">I", header, 36, vhd_checksum(header, 36))
    struct.pack_into(">I", footer, 60, 4)
    struct.pack_into(">I", footer, 64, vhd_checksum(footer, 64))
    data[header_at:header_at + 1024] = header
    data[0:512] = footer
    path.write_bytes(bytes(data[:locators_at]) + rel.ljust(512, b"\0") + abs_.ljust(512, b"\0")
                     + bytes(footer))


def _vhdx_metadata(data: bytes | bytearray) -> tuple[int, int]:
    table = 192 * 1024
    (count,) = struct.unpack_from("<I", data, table + 8)
    for i in range(count):
        entry = table + 16 + 32 * i
        if uuid.UUID(bytes_le=bytes(data[entry:entry + 16])) == _VHDX_METADATA:
            offset, length = struct.unpack_from("<QI", data, entry + 16)
            return offset, length
    raise AssertionError("qemu-img made a VHDX without a metadata region")


def differencing_vhdx(path: Path, size: int, pairs: dict[str, str]) -> None:
    """A VHDX differencing disk whose parent locator holds ``pairs``."""
    qemu_img("create", "-q", "-f", "vhdx", "-o", "subformat=dynamic", str(path), str(size))
    data = bytearray(path.read_bytes())
    region, _length = _vhdx_metadata(data)
    (count,) = struct.unpack_from("<H", data, region + 10)
    end = 0
    for i in range(count):
        entry = region + 32 + 32 * i
        item_id = uuid.UUID(bytes_le=bytes(data[entry:entry + 16]))
        offset, length = struct.unpack_from("<II", data, entry + 16)
        end = max(end, offset + length)
        if item_id == _VHDX_FILE_PARAMETERS:
            (flags,) = struct.unpack_from("<I", data, region + offset + 4)
            struct.pack_into("<I", data, region + offset + 4, flags | 0x2)
    strings = b""
    entries = b""
    base = 20 + 12 * len(pairs)
    for key, value in pairs.items():
        k, v = key.encode("utf-16-le"), value.encode("utf-16-le")
        entries += struct.pack("<IIHH", base + len(strings), base + len(strings) + len(k),
                               len(k), len(v))
        strings += k + v
    blob = _VHDX_PARENT_TYPE.bytes_le + struct.pack("<HH", 0, len(pairs)) + entries + strings
    item_at = -(-end // 4096) * 4096
    data[region + item_at:region + item_at + len(blob)] = blob
    new_entry = region + 32 + 32 * count
    data[new_entry:new_entry + 32] = (_VHDX_PARENT_LOCATOR.bytes_le
                                      + struct.pack("<IIII", item_at, len(blob), 0x4, 0))
    struct.pack_into("<H", data, region + 10, count + 1)
    path.write_bytes(bytes(data))


def sparse_file(path: Path, size: int, extents: list[tuple[int, bytes]]) -> int:
    """Write ``extents`` (offset, data) into a file of ``size`` bytes; return the data bytes."""
    with open(path, "wb") as f:
        for offset, chunk in extents:
            f.seek(offset)
            f.write(chunk)
        f.truncate(size)
    return sum(len(chunk) for _, chunk in extents)


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def enospc_after(calls: int) -> Callable[..., int]:
    """``os.copy_file_range`` that works ``calls`` times, then fails as a full disk does
    (failure injection)."""
    real = os.copy_file_range
    made: list[int] = []

    def full_disk(src: int, dst: int, count: int, offset_src: int | None = None,
                  offset_dst: int | None = None) -> int:
        made.append(count)
        if len(made) > calls:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(src, dst, count, offset_src, offset_dst)
    return full_disk
