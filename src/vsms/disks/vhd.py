"""What qemu-img does not tell: the type and parent of VHD and VHDX files, read from their headers.

VHD (big-endian): a 512-byte footer at the end of the file (dynamic and differencing disks also
keep a copy at offset 0) holds the disk type at offset 60 (2 fixed, 3 dynamic, 4 differencing)
and the current size at offset 48; dynamic and differencing disks have a 1024-byte dynamic header
(cookie ``cxsparse``) whose parent locators name the parent of a differencing disk.

VHDX (little-endian): the region table at 192 KiB (copy at 256 KiB) points to the metadata
region; its File Parameters item has the flags LeaveBlockAllocated (fixed) and HasParent
(differencing), the Virtual Disk Size item the size, the Parent Locator item key/value pairs such
as ``relative_path`` and ``absolute_win32_path``.

Only what these functions need is read, never more than a few KiB per structure; all numbers
read from the file are bounds-checked before use. Damage raises ``InvalidParameter``.
"""

from __future__ import annotations

import os
import struct
import uuid
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import unquote

from vsms.cim.enums import VirtualHardDiskType
from vsms.errors import InvalidParameter

VHD_COOKIE = b"conectix"
VHDX_SIGNATURE = b"vhdxfile"
QCOW2_MAGIC = b"QFI\xfb"

_SECTOR = 512
_DYN_COOKIE = b"cxsparse"
_DYN_HEADER_SIZE = 1024
_LOCATOR_MAX = 64 * 1024
_VHD_TYPES = {2: VirtualHardDiskType.FIXED, 3: VirtualHardDiskType.DYNAMIC,
              4: VirtualHardDiskType.DIFFERENCING}

_KIB = 1024
_VHDX_REGION_TABLES = (192 * _KIB, 256 * _KIB)
_VHDX_TABLE_SIZE = 64 * _KIB
_VHDX_MAX_ENTRIES = 2047
_METADATA_REGION = uuid.UUID("8b7ca206-4790-4b9a-b8fe-575f050f886e")
_FILE_PARAMETERS = uuid.UUID("caa16737-fa36-4d43-b3b6-33f0aa44e76b")
_VIRTUAL_DISK_SIZE = uuid.UUID("2fa54224-cd1b-4876-b211-5dbed83bf4b8")
_PARENT_LOCATOR = uuid.UUID("a8d35f2d-b30b-454d-abf7-d3d84834ab0c")
_LEAVE_BLOCKS_ALLOCATED = 0x1
_HAS_PARENT = 0x2


@dataclass(frozen=True)
class DiskHeaders:
    """What the headers of a VHD or VHDX file say."""

    type: VirtualHardDiskType
    virtual_size: int  # the size the headers record (VHD footer current size, VHDX disk size)
    parent_path: str  # "" unless differencing; see resolve_parent()
    warning: str = ""  # a non-fatal defect (e.g. a VHD whose footer at the end is damaged)


def _damaged(path: str, fmt: str, why: str) -> InvalidParameter:
    return InvalidParameter(f"{path} is not a valid {fmt} file: {why}; "
                            "restore the file from a good copy")


def _pread(f: BinaryIO, offset: int, length: int, path: str, fmt: str) -> bytes:
    data = os.pread(f.fileno(), length, offset)
    if len(data) != length:
        raise _damaged(path, fmt, f"the file ends inside a header (at offset {offset})")
    return data


def _vhd_checksum_ok(block: bytes, at: int) -> bool:
    stored: int = struct.unpack_from(">I", block, at)[0]
    total = sum(block[:at]) + sum(block[at + 4:])
    return (~total & 0xFFFFFFFF) == stored


def read_vhd(path: str) -> DiskHeaders:
    """Read the footer (and for dynamic/differencing disks the dynamic header) of a VHD."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < _SECTOR:
            raise _damaged(path, "VHD", "it is shorter than one 512-byte footer")
        footer = _pread(f, size - _SECTOR, _SECTOR, path, "VHD")
        warning = ""
        if footer[:8] != VHD_COOKIE or not _vhd_checksum_ok(footer, 64):
            head = _pread(f, 0, _SECTOR, path, "VHD")
            if head[:8] != VHD_COOKIE:
                why = ("the footer checksum is wrong" if footer[:8] == VHD_COOKIE
                       else "it has no 'conectix' footer in its last 512 bytes")
                raise _damaged(path, "VHD", why)
            footer = head
            warning = (f"the footer at the end of {path} is missing or damaged "
                       "(only the copy at offset 0 is intact)")
        if not _vhd_checksum_ok(footer, 64):
            raise _damaged(path, "VHD", "the footer checksum is wrong")
        (disk_type,) = struct.unpack_from(">I", footer, 60)
        if disk_type not in _VHD_TYPES:
            raise _damaged(path, "VHD", f"the footer names the unknown disk type {disk_type}")
        (current_size,) = struct.unpack_from(">Q", footer, 48)
        kind = _VHD_TYPES[disk_type]
        parent = ""
        if kind is not VirtualHardDiskType.FIXED:
            (data_offset,) = struct.unpack_from(">Q", footer, 16)
            if data_offset < _SECTOR or data_offset + _DYN_HEADER_SIZE > size:
                raise _damaged(path, "VHD", f"the dynamic header offset {data_offset} lies "
                               "outside the file")
            header = _pread(f, data_offset, _DYN_HEADER_SIZE, path, "VHD")
            if header[:8] != _DYN_COOKIE:
                raise _damaged(path, "VHD", "the dynamic header has no 'cxsparse' cookie")
            if not _vhd_checksum_ok(header, 36):
                raise _damaged(path, "VHD", "the dynamic header checksum is wrong")
            if kind is VirtualHardDiskType.DIFFERENCING:
                parent = _vhd_parent(f, header, size, path)
    return DiskHeaders(kind, current_size, parent, warning)


def _vhd_parent(f: BinaryIO, header: bytes, size: int, path: str) -> str:
    relative: list[str] = []
    absolute: list[str] = []
    for i in range(8):
        code, _space, length, _res, offset = struct.unpack_from(">4sIII Q", header, 576 + 24 * i)
        if length == 0 or length > _LOCATOR_MAX or offset + length > size:
            continue
        if code in (b"W2ru", b"W2ku"):
            text = _pread(f, offset, length, path, "VHD").decode("utf-16-le", "replace")
            (relative if code == b"W2ru" else absolute).append(text.split("\x00")[0])
        elif code == b"MacX":
            text = _pread(f, offset, length, path, "VHD").decode("utf-8", "replace")
            absolute.append(unquote(text.split("\x00")[0].removeprefix("file://")))
    name = header[64:576].decode("utf-16-be", "replace").split("\x00")[0]
    return resolve_parent(path, relative, absolute, [name] if name else [])


def read_vhdx(path: str) -> DiskHeaders:
    """Read the region table and the metadata items a VHDX's type, size and parent live in."""
    with open(path, "rb") as f:
        if _pread(f, 0, 8, path, "VHDX") != VHDX_SIGNATURE:
            raise _damaged(path, "VHDX", "it does not start with the 'vhdxfile' signature")
        region = _vhdx_metadata_region(f, path)
        items = _vhdx_metadata_items(f, region, path)

        def item(guid: uuid.UUID, name: str, minimum: int) -> bytes:
            where = items.get(guid)
            if where is None or where[1] < minimum:
                raise _damaged(path, "VHDX", f"the {name} metadata item is missing")
            return _pread(f, region[0] + where[0], min(where[1], _LOCATOR_MAX), path, "VHDX")

        (flags,) = struct.unpack_from("<I", item(_FILE_PARAMETERS, "File Parameters", 8), 4)
        (vsize,) = struct.unpack_from("<Q", item(_VIRTUAL_DISK_SIZE, "Virtual Disk Size", 8))
        if flags & _HAS_PARENT:
            blob = item(_PARENT_LOCATOR, "Parent Locator", 20)
            pairs = _locator_pairs(blob, path)
            parent = resolve_parent(
                path, [pairs.get("relative_path", "")],
                [pairs.get("absolute_win32_path", ""), pairs.get("volume_path", "")], [])
            return DiskHeaders(VirtualHardDiskType.DIFFERENCING, vsize, parent)
    kind = (VirtualHardDiskType.FIXED if flags & _LEAVE_BLOCKS_ALLOCATED
            else VirtualHardDiskType.DYNAMIC)
    return DiskHeaders(kind, vsize, "")


def _vhdx_metadata_region(f: BinaryIO, path: str) -> tuple[int, int]:
    for table_offset in _VHDX_REGION_TABLES:
        table = _pread(f, table_offset, _VHDX_TABLE_SIZE, path, "VHDX")
        if table[:4] != b"regi":
            continue
        (count,) = struct.unpack_from("<I", table, 8)
        for i in range(min(count, _VHDX_MAX_ENTRIES)):
            raw = table[16 + 32 * i: 48 + 32 * i]
            if uuid.UUID(bytes_le=raw[:16]) == _METADATA_REGION:
                offset, length = struct.unpack_from("<QI", raw, 16)
                return offset, length
    raise _damaged(path, "VHDX", "no region table names a metadata region")


def _vhdx_metadata_items(f: BinaryIO, region: tuple[int, int],
                         path: str) -> dict[uuid.UUID, tuple[int, int]]:
    offset, length = region
    table = _pread(f, offset, min(length, _VHDX_TABLE_SIZE), path, "VHDX")
    if table[:8] != b"metadata":
        raise _damaged(path, "VHDX", "the metadata table has no 'metadata' signature")
    (count,) = struct.unpack_from("<H", table, 10)
    items: dict[uuid.UUID, tuple[int, int]] = {}
    for i in range(min(count, _VHDX_MAX_ENTRIES, len(table) // 32 - 1)):
        raw = table[32 + 32 * i: 64 + 32 * i]
        item_offset, item_length = struct.unpack_from("<II", raw, 16)
        if item_offset + item_length <= length:
            items[uuid.UUID(bytes_le=raw[:16])] = (item_offset, item_length)
    return items


def _locator_pairs(blob: bytes, path: str) -> dict[str, str]:
    (count,) = struct.unpack_from("<H", blob, 18)
    pairs: dict[str, str] = {}
    for i in range(count):
        at = 20 + 12 * i
        if at + 12 > len(blob):
            raise _damaged(path, "VHDX", "the parent locator is truncated")
        key_off, value_off, key_len, value_len = struct.unpack_from("<IIHH", blob, at)
        key = blob[key_off:key_off + key_len].decode("utf-16-le", "replace")
        pairs[key] = blob[value_off:value_off + value_len].decode("utf-16-le", "replace")
    return pairs


def resolve_parent(child: str, relative: list[str], absolute: list[str],
                   names: list[str]) -> str:
    """Choose the parent path of a differencing disk from what its locators record.

    Relative paths (Windows separators allowed) are taken against the child's folder; then the
    absolute paths as written; then bare file names next to the child (an export keeps parent
    and child in one folder). The first candidate that exists on this host wins; when none
    exists, the recorded absolute path (or else the resolved relative one) is returned so the
    caller can report it.
    """
    folder = os.path.dirname(os.path.abspath(child))
    rel = [os.path.normpath(os.path.join(folder, r.replace("\\", "/"))) for r in relative if r]
    recorded = [a for a in absolute if a]
    base = [os.path.join(folder, n.replace("\\", "/").rsplit("/", 1)[-1])
            for n in [*names, *recorded, *relative] if n]
    for candidate in (*rel, *(a for a in recorded if a.startswith("/")), *base):
        if os.path.isfile(candidate):
            return candidate
    return (recorded or rel or [""])[0]
