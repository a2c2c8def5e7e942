"""config.xml: what one export holds, as plain XML of our own design (see docs/export-format.md).

```
<vsms-export format="1">
  <virtual-machine guid="…"><name>…</name></virtual-machine>
  <exported-at>2026-11-27T10:00:00+00:00</exported-at>
  <source-host>…</source-host>
  <vsms-version>…</vsms-version>
  <contents storage="true|false" runtime="true|false"/>
  <virtual-hard-disks>
    <disk device-id="…" format="vpc|vhdx|qcow2|raw" virtual-size="<bytes>">
      <original-path>…</original-path>
      <file>Virtual Hard Disks/…</file>      (absent when storage was not copied)
    </disk>
  </virtual-hard-disks>
  <network-adapters>                       (optional: the connected adapters' switches)
    <adapter device-id="…" switch-id="…" switch-name="…"/>
  </network-adapters>
</vsms-export>
```
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime

from vsms.errors import IncorrectDataType
from vsms.exportdir import safexml, snapconfig
from vsms.exportdir.layout import (
    CONFIG,
    CONFIG_FORMAT_VERSION,
    CONFIG_MAX_BYTES,
    VHD_DIR,
    XML_MAX_DEPTH,
    XML_MAX_ELEMENTS,
    ExportConfig,
    ExportedDisk,
    ExportedNic,
    is_guid,
    q,
)
from vsms.exportdir.tree import rel_path_problem
from vsms.model.vm import ImageFormat

ROOT = "vsms-export"
_FIX = f"restore {CONFIG} from the original export or export the virtual machine again"
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SINGLE = ("virtual-machine", "exported-at", "source-host", "vsms-version", "contents",
           "virtual-hard-disks", "network-adapters", "snapshots", "images")
_BOOL = {"true": True, "false": False}


def _bad(what: str) -> str:
    return f"{CONFIG} {what}: {_FIX}"


def disk_file_clause(disk: ExportedDisk, with_storage: bool) -> str | None:
    """Why the ``file`` of ``disk`` is wrong for an export, as a clause, or None."""
    if not disk.file:
        if with_storage:
            return f"says storage was copied but disk {q(disk.dev_id)} names no file"
        return None
    if not with_storage:
        return (f"says storage was not copied but disk {q(disk.dev_id)} names the file "
                f"{q(disk.file)}")
    why = rel_path_problem(disk.file)
    if why is None and (disk.file.split("/")[0] != VHD_DIR or "/" not in disk.file):
        why = f"is not under '{VHD_DIR}/'"
    if why is not None:
        return (f"gives disk {q(disk.dev_id)} the file {q(disk.file)}, which {why} "
                f"(a disk file must be a relative path under '{VHD_DIR}/')")
    return None


def config_problems(cfg: ExportConfig) -> list[str]:
    """Every problem with the values of ``cfg`` that needs no file system.

    Each is a clause that follows the name of the configuration ("config.xml gives …").
    """
    problems: list[str] = []
    if not is_guid(cfg.vm_guid):
        problems.append(f"gives the virtual machine GUID {q(cfg.vm_guid)}, which is not a "
                        "GUID")
    if not cfg.vm_name:
        problems.append("gives an empty virtual machine name")
    if cfg.exported_at.tzinfo is None:
        problems.append("gives an export time without a time zone")
    texts = [cfg.vm_guid, cfg.vm_name, cfg.source_host, cfg.vsms_version]
    seen_ids: set[str] = set()
    seen_files: set[str] = set()
    for disk in cfg.disks:
        texts += [disk.dev_id, disk.original_path, disk.file]
        if not disk.dev_id:
            problems.append("has a disk with an empty device id")
        elif disk.dev_id in seen_ids:
            problems.append(f"lists the device id {q(disk.dev_id)} more than once")
        seen_ids.add(disk.dev_id)
        if not disk.original_path:
            problems.append(f"gives disk {q(disk.dev_id)} an empty original path")
        if not isinstance(disk.format, ImageFormat):
            problems.append(f"gives disk {q(disk.dev_id)} the unknown format {q(disk.format)}")
        if disk.virtual_size < 0:
            problems.append(f"gives disk {q(disk.dev_id)} a negative virtual size")
        clause = disk_file_clause(disk, cfg.with_storage)
        if clause is not None:
            problems.append(clause)
        elif disk.file and disk.file in seen_files:
            problems.append(f"names the file {q(disk.file)} for more than one disk")
        seen_files.add(disk.file)
    for nic in cfg.nics:
        texts += [nic.dev_id, nic.switch_id, nic.switch_name]
        if not nic.dev_id or not (nic.switch_id or nic.switch_name):
            problems.append("has a network adapter without a device id or a switch")
    problems += snapconfig.tree_problems(cfg)
    texts += [t for s in cfg.snapshots for t in (s.id, s.name, s.parent, s.memory,
                                                 s.memory_original)]
    texts += [t for i in cfg.images for t in (i.file, i.original_path, i.backing)]
    if any(_XML_ILLEGAL.search(t) for t in texts):
        problems.append("holds a control character that XML cannot carry")
    return problems


def config_to_xml(cfg: ExportConfig) -> bytes:
    """Serialise ``cfg`` (already checked with config_problems) as UTF-8 XML."""
    root = ET.Element(ROOT, {"format": CONFIG_FORMAT_VERSION})
    vm = ET.SubElement(root, "virtual-machine", {"guid": cfg.vm_guid.upper()})
    ET.SubElement(vm, "name").text = cfg.vm_name
    ET.SubElement(root, "exported-at").text = cfg.exported_at.isoformat()
    ET.SubElement(root, "source-host").text = cfg.source_host
    ET.SubElement(root, "vsms-version").text = cfg.vsms_version
    ET.SubElement(root, "contents", {"storage": str(cfg.with_storage).lower(),
                                     "runtime": str(cfg.with_runtime).lower()})
    disks = ET.SubElement(root, "virtual-hard-disks")
    for d in cfg.disks:
        el = ET.SubElement(disks, "disk", {"device-id": d.dev_id, "format": str(d.format),
                                          "virtual-size": str(d.virtual_size)})
        ET.SubElement(el, "original-path").text = d.original_path
        if d.file:
            ET.SubElement(el, "file").text = d.file
    if cfg.nics:
        adapters = ET.SubElement(root, "network-adapters")
        for n in cfg.nics:
            ET.SubElement(adapters, "adapter", {"device-id": n.dev_id, "switch-id": n.switch_id,
                                                "switch-name": n.switch_name})
    snapconfig.write_tree(root, cfg)
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    # ElementTree leaves a carriage return in text as is, and parsers turn it into a line feed
    return data.replace(b"\r", b"&#13;") + b"\n"


class _Reader:
    """Collects problems while turning the tuple tree of config.xml into values."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def one(self, parent: safexml.Node, name: str) -> safexml.Node | None:
        found = safexml.children(parent, name)
        if not found:
            self.problems.append(_bad(f"has no <{name}> element in <{parent[0]}>"))
            return None
        return found[0]

    def text(self, parent: safexml.Node, name: str) -> str:
        node = self.one(parent, name)
        if node is None:
            return ""
        if safexml.children(node):
            self.problems.append(_bad(f"has elements inside <{name}>, which holds only text"))
        return safexml.text_of(node)

    def boolean(self, node: safexml.Node, attr: str) -> bool:
        value = node[1].get(attr)
        if value not in _BOOL:
            self.problems.append(_bad(f"gives <{node[0]} {attr}=…> the value {q(value)}, "
                                      "not 'true' or 'false'"))
            return False
        return _BOOL[value]

    def check_names(self, node: safexml.Node, allowed: tuple[str, ...], single: bool) -> None:
        if safexml.stray_text(node):
            self.problems.append(_bad(f"has stray text inside <{node[0]}>"))
        for child in safexml.children(node):
            if child[0] not in allowed:
                self.problems.append(_bad(f"has an unexpected <{child[0]}> in <{node[0]}>"))
        if single:
            for name in allowed:
                if len(safexml.children(node, name)) > 1:
                    self.problems.append(_bad(f"has more than one <{name}> in <{node[0]}>"))

    def disk(self, node: safexml.Node) -> ExportedDisk | None:
        self.check_names(node, ("original-path", "file"), single=True)
        dev_id = node[1].get("device-id", "")
        fmt_text = node[1].get("format", "")
        size_text = node[1].get("virtual-size", "")
        original = self.text(node, "original-path")
        files = safexml.children(node, "file")
        file = safexml.text_of(files[0]) if files else ""
        try:
            fmt = ImageFormat(fmt_text)
        except ValueError:
            known = ", ".join(f.value for f in ImageFormat)
            self.problems.append(_bad(f"gives disk {q(dev_id)} the format {q(fmt_text)} "
                                      f"(expected one of {known})"))
            return None
        if not (size_text.isascii() and size_text.isdigit() and len(size_text) <= 20):
            self.problems.append(_bad(f"gives disk {q(dev_id)} the virtual size {q(size_text)}, "
                                      "not a number of bytes"))
            return None
        return ExportedDisk(dev_id, original, file, fmt, int(size_text))

    def config(self, root: safexml.Node) -> ExportConfig | None:
        if root[0] != ROOT:
            self.problems.append(_bad(f"has the root element <{root[0]}> instead of <{ROOT}>"))
            return None
        version = root[1].get("format")
        if version != CONFIG_FORMAT_VERSION:
            self.problems.append(_bad(f"has format version {q(version)}; this service reads "
                                      f"version {CONFIG_FORMAT_VERSION!r}"))
            return None
        self.check_names(root, _SINGLE, single=True)
        vm = self.one(root, "virtual-machine")
        if vm is not None:
            self.check_names(vm, ("name",), single=True)
        guid = vm[1].get("guid", "") if vm is not None else ""
        name = self.text(vm, "name") if vm is not None else ""
        stamp = self.text(root, "exported-at")
        try:
            exported_at = datetime.fromisoformat(stamp)
        except ValueError:
            self.problems.append(_bad(f"gives the export time {q(stamp)}, not an ISO 8601 time"))
            exported_at = datetime.fromtimestamp(0).astimezone()
        host = self.text(root, "source-host")
        version_text = self.text(root, "vsms-version")
        contents = self.one(root, "contents")
        storage = self.boolean(contents, "storage") if contents is not None else False
        runtime = self.boolean(contents, "runtime") if contents is not None else False
        disks: list[ExportedDisk] = []
        vhds = self.one(root, "virtual-hard-disks")
        if vhds is not None:
            self.check_names(vhds, ("disk",), single=False)
            for node in safexml.children(vhds, "disk"):
                disk = self.disk(node)
                if disk is not None:
                    disks.append(disk)
        nics: list[ExportedNic] = []
        for adapters in safexml.children(root, "network-adapters"):  # optional
            self.check_names(adapters, ("adapter",), single=False)
            for node in safexml.children(adapters, "adapter"):
                attrs = node[1]
                nics.append(ExportedNic(attrs.get("device-id", ""), attrs.get("switch-id", ""),
                                        attrs.get("switch-name", "")))
        snaps, images, previous, last = snapconfig.read_tree(self, root)
        cfg = ExportConfig(guid.upper() if is_guid(guid) else guid, name, exported_at, storage,
                           runtime, disks, host, version_text, nics, snaps, images, previous,
                           last)
        self.problems += [_bad(c) for c in config_problems(cfg)]
        return cfg


def parse_config(data: bytes) -> tuple[ExportConfig | None, list[str]]:
    """Parse config.xml bytes: the config (best effort, None when unusable) and every problem."""
    try:
        root = safexml.parse_xml(data, max_bytes=CONFIG_MAX_BYTES, max_depth=XML_MAX_DEPTH,
                                 max_elements=XML_MAX_ELEMENTS)
    except IncorrectDataType as exc:
        return None, [f"{CONFIG} is refused because {exc}: {_FIX}"]
    reader = _Reader()
    cfg = reader.config(root)
    return cfg, reader.problems
