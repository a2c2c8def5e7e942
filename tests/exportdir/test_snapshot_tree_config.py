"""config.xml with a snapshot tree (<snapshots>, <images>): it reads back unchanged, format 1
stays the version, and every inconsistency of the recorded tree is reported by name."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from vsms.exportdir.config import config_problems, config_to_xml, parse_config
from vsms.exportdir.layout import ExportConfig, ExportedDisk, ExportedImage, ExportedSnapshot
from vsms.model.vm import ImageFormat

VM = "6A1D2E3F-0B4C-4D5E-8F90-A1B2C3D4E5F6"
S1 = "11111111-2222-3333-4444-555555555555"
S2 = "21111111-2222-3333-4444-555555555555"
WHEN = datetime(2026, 12, 2, 9, 30, 0, 123456, tzinfo=UTC)


def tree_config(storage: bool = True) -> ExportConfig:
    base, o1, cur = "/s/vm.vhd", f"/s/Snapshots/{VM}/A.qcow2", f"/s/Snapshots/{VM}/B.qcow2"

    def file(name: str) -> str:
        return f"Virtual Hard Disks/{name}" if storage else ""

    return ExportConfig(
        vm_guid=VM, vm_name="web", exported_at=WHEN, with_storage=storage, with_runtime=False,
        disks=[ExportedDisk("D1", cur, file("B.qcow2"), ImageFormat.QCOW2, 1 << 24)],
        snapshots=[ExportedSnapshot(S1, "web - (12/2/2026 - 9:30:00 AM)", WHEN, "",
                                    f"Snapshots/{S1}.save" if storage else "",
                                    f"/s/Snapshots/{VM}/{S1}.save"),
                   ExportedSnapshot(S2, "web & <co>", WHEN, S1)],
        images=[ExportedImage(file("vm.vhd"), base, ImageFormat.VHD),
                ExportedImage(file("A.qcow2"), o1, ImageFormat.QCOW2, base, ImageFormat.VHD),
                ExportedImage(file("B.qcow2"), cur, ImageFormat.QCOW2, o1, ImageFormat.QCOW2)],
        previous_snapshot=S2, last_applied=S1)


def test_tree_reads_back_unchanged() -> None:
    for storage in (True, False):
        cfg = tree_config(storage)
        assert config_problems(cfg) == []
        data = config_to_xml(cfg)
        assert b'<vsms-export format="1">' in data and b"<snapshots " in data
        back, problems = parse_config(data)
        assert problems == [] and back == cfg


def test_an_export_without_a_tree_has_no_tree_elements() -> None:
    cfg = replace(tree_config(), snapshots=[], images=[], previous_snapshot="",
                  last_applied="")
    data = config_to_xml(cfg)
    assert b"<snapshots" not in data and b"<images" not in data
    assert parse_config(data) == (cfg, [])


def test_inconsistent_trees_are_reported() -> None:
    cfg = tree_config()
    s1, s2 = cfg.snapshots
    base, o1, cur = cfg.images
    cases = {
        "the parent": replace(cfg, snapshots=[s1, replace(s2, parent=VM)]),
        "previous snapshot": replace(cfg, previous_snapshot=VM),
        "not a GUID": replace(cfg, snapshots=[replace(s1, id="S1"), s2]),
        "the memory file": replace(cfg, snapshots=[replace(s1, memory="Snapshots/x.save"), s2]),
        "backing file": replace(cfg, images=[base, replace(o1, backing="/elsewhere.vhd"), cur]),
        "no backing-format": replace(cfg, images=[base, replace(o1, backing_format=None), cur]),
        "no file although": replace(cfg, images=[replace(base, file=""), o1, cur]),
        "contains '..'": replace(cfg, images=[replace(base, file="x/../vm.vhd"), o1, cur]),
        "which is not directly under": replace(cfg, images=[replace(base, file="Snapshots/v"),
                                                            o1, cur]),
        "more than one image": replace(cfg, images=[base, replace(o1, file=base.file), cur]),
    }
    for words, bad in cases.items():
        problems = config_problems(bad)
        assert any(words in p for p in problems), (words, problems)
        _, parsed = parse_config(config_to_xml(bad))  # the reader reports it too
        assert any(words in p for p in parsed), (words, parsed)
