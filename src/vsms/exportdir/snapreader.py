"""Reading the snapshot tree of an export: each snapshot's ``Snapshots/<GUID>.exp`` and every
image of its chains (``read_export`` calls ``read_tree``; problems are sentences, as there).

An image copied into the export must be there, be of the format config.xml records (probed from
its magic bytes only to compare, never to open it), and name as its backing file exactly the
copy of the image config.xml says it builds on, by a name relative to its own folder; a base
image names none. Memory files must be present. Nothing is modified.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from vsms.errors import VsmsError
from vsms.exportdir.expfile import instance_problems, parse_exp
from vsms.exportdir.layout import EXP_MAX_BYTES, ExportConfig, q
from vsms.exportdir.snapconfig import snapshot_exp
from vsms.exportdir.tree import TreeScan, resolves_inside
from vsms.model.vm import ImageFormat

_AGAIN = "restore it from the original export or export the virtual machine again"
ReadFn = Callable[[Path, str, int, list[str]], bytes | None]


def read_tree(root: Path, scan: TreeScan, cfg: ExportConfig, read: ReadFn,
              probe: Callable[[str], ImageFormat], problems: list[str]) -> dict[str, list[Any]]:
    """Each snapshot's settings instances (by snapshot id); every problem appended."""
    found: dict[str, list[Any]] = {}
    for snap in cfg.snapshots:
        rel = snapshot_exp(snap.id)
        if rel not in scan.files:
            problems.append(f"{q(rel)}, the settings of snapshot {q(snap.name)}, is missing: "
                            f"{_AGAIN}")
            continue
        data = read(root, rel, EXP_MAX_BYTES, problems)
        if data is None:
            continue
        instances, clauses = parse_exp(data)
        if instances:
            clauses += instance_problems(instances, snap.id)
        problems += [f"{q(rel)} {clause}: {_AGAIN}" for clause in clauses]
        found[snap.id] = instances
        if snap.memory and snap.memory not in scan.files:
            problems.append(f"{q(snap.memory)}, the memory state of snapshot {q(snap.name)}, is "
                            f"missing: {_AGAIN}")
    if cfg.with_storage:
        _images(root, scan, cfg, probe, problems)
    return found


def _images(root: Path, scan: TreeScan, cfg: ExportConfig, probe: Callable[[str], ImageFormat],
            problems: list[str]) -> None:
    from vsms.disks.qemuimg import referenced_files  # imported late, like the probe

    by_original = {i.original_path: i for i in cfg.images}
    for img in cfg.images:
        what = f"the image {q(img.file)} in config.xml"
        if not img.file or not resolves_inside(root, img.file) or img.file not in scan.files:
            problems.append(f"{what} is missing or leads outside the export: {_AGAIN}")
            continue
        try:
            fmt = probe(str(root / img.file))
            refs = referenced_files(str(root / img.file)) if fmt is ImageFormat.QCOW2 else []
        except VsmsError as exc:
            problems.append(f"{what} cannot be examined ({exc}): {_AGAIN}")
            continue
        if fmt is not img.format:
            problems.append(f"{what} is a {fmt.value} image, not {img.format.value} as "
                            f"config.xml says: {_AGAIN}")
            continue
        parent = by_original.get(img.backing) if img.backing else None
        want = [("backing file", parent.file.rsplit("/", 1)[-1])] if parent is not None else []
        if refs != want:
            problems.append(f"{what} names {q(refs)} as the files it builds on, not "
                            f"{q(want)} as config.xml records: an exported image may only build "
                            f"on another image of the export, named relative to it; {_AGAIN}")
