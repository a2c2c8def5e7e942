"""Names, limits and data types of one exported virtual machine (the per-VM directory).

```
<VM ElementName>/
  config.xml                    ExportConfig as plain XML (config.py)
  Virtual Machines/<GUID>.exp   the VM's settings instances as CIM-XML (expfile.py)
  Virtual Hard Disks/           copies of the disks (only when storage was copied)
  Snapshots/                    <id>.exp (+ <id>.save) per snapshot of an exported tree
  manifest.sha256               sha256sum lines for every other file, written last (manifest.py)
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from vsms.cim import names
from vsms.model.vm import ImageFormat

CONFIG = "config.xml"
VMS_DIR = "Virtual Machines"
VHD_DIR = "Virtual Hard Disks"
SNAPSHOTS_DIR = "Snapshots"
MANIFEST = "manifest.sha256"
EXP_SUFFIX = ".exp"

CONFIG_MAX_BYTES = 1 << 20
"""config.xml larger than this is refused before parsing."""
EXP_MAX_BYTES = 4 << 20
"""A .exp file larger than this is refused before parsing."""
MANIFEST_MAX_BYTES = 1 << 20
XML_MAX_DEPTH = 32
"""Deepest element nesting accepted in config.xml and .exp (CIM-XML needs about 8)."""
XML_MAX_ELEMENTS = 100_000
TREE_MAX_ENTRIES = 10_000
"""An export with more files and directories than this is refused (it is not one of ours)."""

CONFIG_FORMAT_VERSION = "1"

EXP_CLASSES = frozenset({
    names.VSSD, names.VSGSD, names.RASD, names.MEMORY_SD, names.PROCESSOR_SD,
    names.SYNTHETIC_NIC_SD, names.EMULATED_NIC_SD,
    "Msvm_KvpExchangeComponentSettingData",  # the host's key-value items (when it has some)
})
"""Classes a .exp may hold: the settings instances of one virtual machine."""

_GUID_RE = re.compile(r"^[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}$")


def is_guid(text: str) -> bool:
    """True for a GUID written as 8-4-4-4-12 hex digits, without braces (any case)."""
    return bool(_GUID_RE.match(text))


def q(value: object, limit: int = 80) -> str:
    """``repr(value)`` for a message, cut to about ``limit`` characters (values come from files)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def exp_name(guid: str) -> str:
    """File name of the .exp for a VM: ``<GUID>.exp`` with the GUID upper-case."""
    return guid.upper() + EXP_SUFFIX


@dataclass(frozen=True)
class ExportedDisk:
    """One virtual hard disk of the exported VM.

    ``file`` is the copy's path relative to the export directory (``Virtual Hard Disks/…``, with
    ``/`` separators), or ``""`` when storage was not copied.
    """

    dev_id: str
    original_path: str
    file: str
    format: ImageFormat
    virtual_size: int


@dataclass(frozen=True)
class ExportedNic:
    """The switch one network adapter of the exported VM was connected to (issue 14): its
    Name (a GUID for vsms switches) and ElementName, so an import finds the same switch by ID,
    else by name."""

    dev_id: str
    switch_id: str
    switch_name: str


@dataclass(frozen=True)
class ExportedImage:
    """One image of a snapshot chain (an export with its snapshot tree): a frozen image or an
    overlay, named by the .exp files (by ``original_path``) or by another image as its backing
    file. ``file`` is its copy under ``Virtual Hard Disks/`` ("" in a configuration-only
    export); ``backing`` the ``original_path`` of the image it builds on ("" for a base image),
    opened as ``backing_format``."""

    file: str
    original_path: str
    format: ImageFormat
    backing: str = ""
    backing_format: ImageFormat | None = None


@dataclass(frozen=True)
class ExportedSnapshot:
    """One snapshot of the exported tree: its settings are ``Snapshots/<id>.exp``; ``memory``
    is the copy of its memory state (``Snapshots/<id>.save``, "" when it has none or storage was
    not copied) and ``memory_original`` where that file was."""

    id: str
    name: str
    created: datetime
    parent: str = ""
    memory: str = ""
    memory_original: str = ""


@dataclass(frozen=True)
class ExportConfig:
    """What config.xml records about one export."""

    vm_guid: str
    vm_name: str
    exported_at: datetime  # timezone-aware
    with_storage: bool
    with_runtime: bool
    disks: list[ExportedDisk] = field(default_factory=list)
    source_host: str = ""
    vsms_version: str = ""
    nics: list[ExportedNic] = field(default_factory=list)  # connected adapters only
    # the snapshot tree (CopySnapshotConfiguration 0); empty in exports without one
    snapshots: list[ExportedSnapshot] = field(default_factory=list)
    images: list[ExportedImage] = field(default_factory=list)
    previous_snapshot: str = ""
    last_applied: str = ""


@dataclass(frozen=True)
class ExportPackage:
    """A validated export: ``directory`` is its resolved path, ``instances`` the .exp contents."""

    directory: Path
    config: ExportConfig
    instances: list[Any]  # pywbem.CIMInstance, in file order
    exp_path: Path
    # snapshot id -> its settings instances (Snapshots/<id>.exp), in config.xml's order
    snapshot_instances: dict[str, list[Any]] = field(default_factory=dict)

