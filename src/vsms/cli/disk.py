"""``vsms disk create PATH --size SIZE [--fixed]`` and ``vsms disk info PATH``.

Both go through Msvm_ImageManagementService: CreateDynamicVirtualHardDisk /
CreateFixedVirtualHardDisk (an Msvm_StorageJob) and GetVirtualHardDiskInfo (an embedded
Msvm_VirtualHardDiskInfo). The format follows the file name: .vhd or .vhdx.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

import pywbem

from vsms.cim import names
from vsms.cim.embedded import parse_instance
from vsms.cli import codes
from vsms.cli.output import Output
from vsms.cli.session import CliError, Session, job_summary

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'64M', '1G', '10GiB', '1048576' -> bytes (binary units)."""
    m = _SIZE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size: give bytes or a number with K, M, G or T (e.g. 10G)")
    size = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    if size <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive size")
    return size


def human(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
               parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("disk", help="virtual hard disks: create, info")
    acts = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = acts.add_parser("create", parents=parents, help="create a .vhd or .vhdx image")
    a.add_argument("path", help="the new image (.vhd or .vhdx) under a storage root")
    a.add_argument("--size", type=parse_size, required=True,
                   help="virtual size: bytes or with K, M, G, T (e.g. 10G)")
    a.add_argument("--fixed", action="store_true",
                   help="allocate the whole size now (default: dynamic, grows on use)")
    a.set_defaults(run=cmd_create)
    a = acts.add_parser("info", parents=parents, help="show an image's type, sizes and use")
    a.add_argument("path", help="the image (.vhd or .vhdx)")
    a.set_defaults(run=cmd_info)


def cmd_create(args: argparse.Namespace, s: Session, out: Output) -> int:
    path = os.path.abspath(args.path)
    kind = "fixed" if args.fixed else "dynamic"
    method = "CreateFixedVirtualHardDisk" if args.fixed else "CreateDynamicVirtualHardDisk"
    _, job = s.call(s.service(names.IMAGE_SERVICE), method,
                    [("Path", path), ("MaxInternalSize", pywbem.Uint64(args.size))],
                    label=f"Creating {os.path.basename(path)}")
    out.result(f"Created {kind} virtual hard disk {path} ({human(args.size)}).",
               {"ok": True, "path": path, "type": kind, "size": args.size,
                "job": job_summary(job) if job is not None else None})
    return 0


def disk_facts(info: pywbem.CIMInstance, path: str) -> dict[str, Any]:
    dtype = info.get("Type")
    return {"path": path, "type": codes.DISK_TYPE_NAMES.get(int(dtype), str(dtype))
            if dtype is not None else None,
            "max_internal_size": info.get("MaxInternalSize"), "file_size": info.get("FileSize"),
            "parent_path": info.get("ParentPath") or "", "in_use": info.get("InUse"),
            "in_saved_state": info.get("InSavedState")}


def get_info(s: Session, path: str) -> dict[str, Any]:
    """GetVirtualHardDiskInfo of ``path`` as plain facts; CliError when the call fails."""
    result, _ = s.call(s.service(names.IMAGE_SERVICE), "GetVirtualHardDiskInfo",
                       [("Path", path)], label=f"Inspecting {os.path.basename(path)}")
    raw = result.get("Info")
    if isinstance(raw, str):
        info = parse_instance(raw)
    elif isinstance(raw, pywbem.CIMInstance):
        info = raw
    else:
        raise CliError(f"GetVirtualHardDiskInfo returned no Info for {path}")
    return disk_facts(info, path)


def cmd_info(args: argparse.Namespace, s: Session, out: Output) -> int:
    f = get_info(s, os.path.abspath(args.path))
    lines = [f"Path:          {f['path']}", f"Type:          {f['type']}",
             f"Virtual size:  {human(f['max_internal_size'])} ({f['max_internal_size']} bytes)",
             f"File size:     {human(f['file_size'])} ({f['file_size']} bytes)",
             f"Parent:        {f['parent_path'] or '(none)'}",
             f"In use:        {'yes' if f['in_use'] else 'no'}",
             f"Saved state:   {'yes' if f['in_saved_state'] else 'no'}"]
    out.result(lines, f)
    return 0
