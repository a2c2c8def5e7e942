"""The snapshot tree in config.xml (exports with CopySnapshotConfiguration 0; optional).

```
<snapshots previous="<GUID>" last-applied="<GUID>">     (attributes optional)
  <snapshot id="<GUID>" parent="<GUID>" created="<ISO 8601>">   (parent optional: a root)
    <name>…</name>
    <memory original-path="…">Snapshots/<GUID>.save</memory>    (optional; text only with storage)
  </snapshot>
</snapshots>
<images>
  <image format="vpc|vhdx|qcow2|raw" backing-format="…">      (backing-format with <backing>)
    <original-path>…</original-path>
    <backing>…original path of the image it builds on…</backing>  (optional: a base image)
    <file>Virtual Hard Disks/…</file>                            (exactly when storage was copied)
  </image>
</images>
```
Each snapshot's settings are ``Snapshots/<GUID>.exp`` (the same CIM-XML as the VM's .exp, the
VSSD with SettingType 5). The reader module of config.xml calls ``read_tree`` and
``tree_problems``; ``write_tree`` adds the elements.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Protocol

from vsms.exportdir import safexml
from vsms.exportdir.layout import (
    EXP_SUFFIX,
    SNAPSHOTS_DIR,
    VHD_DIR,
    ExportConfig,
    ExportedImage,
    ExportedSnapshot,
    is_guid,
    q,
)
from vsms.exportdir.tree import rel_path_problem
from vsms.model.vm import ImageFormat

MEMORY_SUFFIX = ".save"
_FIX = "restore config.xml from the original export or export the virtual machine again"


def snapshot_exp(snapshot_id: str) -> str:
    """The path of a snapshot's settings inside the export: ``Snapshots/<GUID>.exp``."""
    return f"{SNAPSHOTS_DIR}/{snapshot_id.upper()}{EXP_SUFFIX}"


def snapshot_memory(snapshot_id: str) -> str:
    """The path of a snapshot's memory state inside the export: ``Snapshots/<GUID>.save``."""
    return f"{SNAPSHOTS_DIR}/{snapshot_id.upper()}{MEMORY_SUFFIX}"


class Reader(Protocol):
    problems: list[str]

    def text(self, parent: safexml.Node, name: str) -> str: ...

    def check_names(self, node: safexml.Node, allowed: tuple[str, ...],
                    single: bool) -> None: ...


def write_tree(root: ET.Element, cfg: ExportConfig) -> None:
    """Append ``<snapshots>`` and ``<images>`` to ``root`` when the export holds a tree."""
    if not cfg.snapshots and not cfg.images:
        return
    attrs = {k: v for k, v in (("previous", cfg.previous_snapshot),
                               ("last-applied", cfg.last_applied)) if v}
    snaps = ET.SubElement(root, "snapshots", attrs)
    for s in cfg.snapshots:
        el = ET.SubElement(snaps, "snapshot", {"id": s.id.upper(), "created": s.created.isoformat(),
                                               **({"parent": s.parent.upper()} if s.parent
                                                  else {})})
        ET.SubElement(el, "name").text = s.name
        if s.memory_original:
            ET.SubElement(el, "memory", {"original-path": s.memory_original}).text = s.memory
    images = ET.SubElement(root, "images")
    for i in cfg.images:
        el = ET.SubElement(images, "image", {"format": str(i.format), **(
            {"backing-format": str(i.backing_format)} if i.backing_format else {})})
        ET.SubElement(el, "original-path").text = i.original_path
        if i.backing:
            ET.SubElement(el, "backing").text = i.backing
        if i.file:
            ET.SubElement(el, "file").text = i.file


def _format(reader: Reader, text: str | None, what: str) -> ImageFormat | None:
    if text is None:
        return None
    try:
        return ImageFormat(text)
    except ValueError:
        reader.problems.append(f"{what} has the unknown image format {q(text)}: {_FIX}")
        return None


def read_tree(reader: Reader, root: safexml.Node
              ) -> tuple[list[ExportedSnapshot], list[ExportedImage], str, str]:
    """The snapshots, images, previous and last-applied snapshot recorded in config.xml."""
    snapshots: list[ExportedSnapshot] = []
    images: list[ExportedImage] = []
    previous = last = ""
    for node in safexml.children(root, "snapshots"):
        reader.check_names(node, ("snapshot",), single=False)
        previous = node[1].get("previous", "").upper()
        last = node[1].get("last-applied", "").upper()
        for snap in safexml.children(node, "snapshot"):
            reader.check_names(snap, ("name", "memory"), single=True)
            attrs = snap[1]
            try:
                created = datetime.fromisoformat(attrs.get("created", ""))
            except ValueError:
                reader.problems.append(f"config.xml gives snapshot {q(attrs.get('id'))} the "
                                       f"creation time {q(attrs.get('created'))}, not an ISO "
                                       f"8601 time: {_FIX}")
                continue
            memory = safexml.children(snap, "memory")
            snapshots.append(ExportedSnapshot(
                attrs.get("id", "").upper(), reader.text(snap, "name"), created,
                attrs.get("parent", "").upper(),
                safexml.text_of(memory[0]) if memory else "",
                memory[0][1].get("original-path", "") if memory else ""))
    for node in safexml.children(root, "images"):
        reader.check_names(node, ("image",), single=False)
        for img in safexml.children(node, "image"):
            reader.check_names(img, ("original-path", "backing", "file"), single=True)
            original = reader.text(img, "original-path")
            fmt = _format(reader, img[1].get("format", ""), f"config.xml image {q(original)}")
            backing_fmt = _format(reader, img[1].get("backing-format"),
                                  f"config.xml image {q(original)}")
            backing = safexml.children(img, "backing")
            file = safexml.children(img, "file")
            if fmt is not None:
                images.append(ExportedImage(
                    safexml.text_of(file[0]) if file else "", original, fmt,
                    safexml.text_of(backing[0]) if backing else "", backing_fmt))
    return snapshots, images, previous, last


def tree_problems(cfg: ExportConfig) -> list[str]:
    """Clauses ("gives …") for every inconsistency of the recorded tree."""
    problems: list[str] = []
    ids = [s.id for s in cfg.snapshots]
    for s in cfg.snapshots:
        if s.created.tzinfo is None:
            problems.append(f"gives snapshot {q(s.id)} a creation time without a time zone")
        if not is_guid(s.id):
            problems.append(f"gives a snapshot the id {q(s.id)}, which is not a GUID")
        if ids.count(s.id) > 1:
            problems.append(f"lists the snapshot {q(s.id)} more than once")
        if s.parent and s.parent not in ids:
            problems.append(f"gives snapshot {q(s.id)} the parent {q(s.parent)}, which is not a "
                            "snapshot of this export")
        if s.memory and (not cfg.with_storage or s.memory != snapshot_memory(s.id)):
            problems.append(f"gives snapshot {q(s.id)} the memory file {q(s.memory)} (expected "
                            f"{q(snapshot_memory(s.id))}, and only when storage was copied)")
        if cfg.with_storage and s.memory_original and not s.memory:
            problems.append(f"gives snapshot {q(s.id)} a memory state but no file for it")
    for what, value in (("previous", cfg.previous_snapshot), ("last-applied", cfg.last_applied)):
        if value and value not in ids:
            problems.append(f"names {q(value)} as the {what} snapshot, which is not a snapshot "
                            "of this export")
    originals = [i.original_path for i in cfg.images]
    for i in cfg.images:
        if not i.original_path or originals.count(i.original_path) > 1:
            problems.append(f"lists the image {q(i.original_path)} with an empty or repeated "
                            "original path")
        if i.backing and (i.backing not in originals or i.backing_format is None):
            problems.append(f"gives image {q(i.original_path)} the backing file {q(i.backing)}, "
                            "which is not an image of this export or has no backing-format")
        if cfg.with_storage != bool(i.file):
            problems.append(f"gives image {q(i.original_path)} "
                            f"{'no file' if cfg.with_storage else 'a file'} although storage "
                            f"was {'' if cfg.with_storage else 'not '}copied")
        elif i.file:
            why = rel_path_problem(i.file)
            if why is None and (i.file.split("/")[0] != VHD_DIR or i.file.count("/") != 1):
                why = f"is not directly under '{VHD_DIR}/'"
            if why is not None:
                problems.append(f"gives image {q(i.original_path)} the file {q(i.file)}, which "
                                f"{why}")
    files = [i.file for i in cfg.images if i.file]
    if len(files) != len(set(files)):
        problems.append("names one image file for more than one image")
    return problems
