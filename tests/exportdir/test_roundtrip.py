"""A valid export written with the writer reads back unchanged; the writer's own guarantees."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest
from pywbem import CIMInstance

from tests.exportdir.conftest import GUID, Export, build_export, config, settings_instances
from vsms.cim import names
from vsms.disks.copy import data_bytes
from vsms.errors import InvalidParameter, JobCancelled
from vsms.exportdir import writer
from vsms.exportdir.layout import CONFIG, MANIFEST, SNAPSHOTS_DIR, VHD_DIR, VMS_DIR, ExportedDisk
from vsms.exportdir.reader import read_export
from vsms.model.vm import ImageFormat


def _listing(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def test_valid_export_reads_back(export: Export) -> None:
    before = _listing(export.path)
    pkg = read_export(export.path)
    assert pkg.directory == export.path.resolve()
    assert pkg.config == export.config
    assert pkg.exp_path == export.path / VMS_DIR / f"{GUID}.exp"
    wanted = settings_instances()
    assert [i.classname for i in pkg.instances] == [i.classname for i in wanted]
    for got, exp in zip(pkg.instances, wanted, strict=True):
        assert dict(got.items()) == dict(exp.items())
    assert _listing(export.path) == before, "reading must not change the export"


def test_layout_on_disk(export: Export) -> None:
    names_ = sorted(str(p.relative_to(export.path)) for p in export.path.rglob("*"))
    assert names_ == sorted([CONFIG, SNAPSHOTS_DIR, VHD_DIR, f"{VHD_DIR}/data.vhdx",
                             f"{VHD_DIR}/disk1.vhd", VMS_DIR, f"{VMS_DIR}/{GUID}.exp", MANIFEST])
    exp = (export.path / VMS_DIR / f"{GUID}.exp").read_text()
    assert exp.startswith('<?xml version="1.0" encoding="utf-8"?>\n'
                          '<CIM CIMVERSION="2.0" DTDVERSION="2.0">\n<DECLARATION>\n<DECLGROUP>\n'
                          '<VALUE.OBJECT><INSTANCE CLASSNAME="Msvm_VirtualSystemSettingData">')
    assert exp.count("<VALUE.OBJECT>") == len(settings_instances())
    lines = (export.path / MANIFEST).read_text().splitlines()
    assert [ln.split("  ", 1)[1] for ln in lines] == sorted([
        CONFIG, f"{VHD_DIR}/data.vhdx", f"{VHD_DIR}/disk1.vhd", f"{VMS_DIR}/{GUID}.exp"])


def test_manifest_verifies_with_sha256sum(export: Export) -> None:
    done = subprocess.run(["sha256sum", "--strict", "-c", MANIFEST], cwd=export.path,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": OK") == 4


def test_hand_written_export_reads(tmp_path: Path) -> None:
    """The format as docs/export-format.md describes it, written without the writer."""
    root = tmp_path / "by hand"
    (root / VMS_DIR).mkdir(parents=True)
    (root / CONFIG).write_text(
        "<?xml version='1.0' encoding='utf-8'?>\n"
        '<vsms-export format="1">\n'
        f'  <virtual-machine guid="{GUID}"><name>hand</name></virtual-machine>\n'
        "  <exported-at>2026-11-27T10:30:00+01:00</exported-at>\n"
        "  <source-host>h</source-host><vsms-version>9</vsms-version>\n"
        '  <contents storage="false" runtime="false"/>\n'
        "  <virtual-hard-disks>\n"
        f'    <disk device-id="{GUID[:8]}" format="vpc" virtual-size="10">'
        "<original-path>/a b/c.vhd</original-path></disk>\n"
        "  </virtual-hard-disks>\n</vsms-export>\n")
    vssd = CIMInstance(names.VSSD, properties={"InstanceID": f"Microsoft:{GUID.lower()}"})
    (root / VMS_DIR / f"{GUID}.exp").write_text(
        '<CIM CIMVERSION="2.0" DTDVERSION="2.0"><DECLARATION><DECLGROUP>'
        f"<VALUE.OBJECT>{vssd.tocimxmlstr()}</VALUE.OBJECT>"
        "</DECLGROUP></DECLARATION></CIM>")
    subprocess.run(f"sha256sum {CONFIG} 'Virtual Machines'/*.exp > {MANIFEST}", shell=True,
                   cwd=root, check=True, timeout=30)
    pkg = read_export(root)
    assert pkg.config.vm_name == "hand"
    assert pkg.config.disks == [ExportedDisk(GUID[:8], "/a b/c.vhd", "", ImageFormat.VHD, 10)]
    assert pkg.config.exported_at.utcoffset() is not None
    assert pkg.instances[0]["InstanceID"] == f"Microsoft:{GUID.lower()}"


def test_configuration_only_export(tmp_path: Path) -> None:
    exp = build_export(tmp_path / "cfg-only", storage=False)
    pkg = read_export(exp.path)
    assert not pkg.config.with_storage
    assert [d.file for d in pkg.config.disks] == ["", ""]


def test_awkward_text_round_trips(tmp_path: Path) -> None:
    from dataclasses import replace

    from vsms.exportdir.config import parse_config

    base = config(storage=False)
    odd = replace(base, vm_name=" two\r\nlines\t'\"]]>&amp; ", source_host="",
                  disks=[replace(base.disks[0], original_path="/a b/&<c>.vhd")])
    writer.write_config(tmp_path, odd)
    parsed, problems = parse_config((tmp_path / CONFIG).read_bytes())
    assert problems == []
    assert parsed == odd


def test_no_temporary_files_left(export: Export) -> None:
    writer.write_config(export.path, export.config)  # overwrite in place
    leftovers = [p.name for p in export.path.rglob(".*")]
    assert leftovers == []


def test_progress_counts_bytes_and_cancel_stops(export: Export) -> None:
    total = sum(data_bytes(str(p)) for p in export.path.rglob("*")
                if p.is_file() and p.name != MANIFEST)  # holes are not read
    seen: list[int] = []
    read_export(export.path, progress=seen.append)
    assert seen and seen == sorted(seen) and seen[-1] == total

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(JobCancelled):
        read_export(export.path, cancel=cancel)
    (export.path / MANIFEST).unlink()
    with pytest.raises(JobCancelled):
        writer.write_manifest(export.path, cancel=cancel)
    assert not (export.path / MANIFEST).exists()
    assert [p.name for p in export.path.rglob(".*")] == []


def test_write_config_refuses_bad_values_and_writes_nothing(tmp_path: Path) -> None:
    cfg = config()
    bad = type(cfg)(vm_guid="not-a-guid", vm_name="", exported_at=cfg.exported_at.replace(
        tzinfo=None), with_storage=True, with_runtime=False, disks=[
        ExportedDisk("d", "/x.vhd", "/etc/passwd", ImageFormat.VHD, 1),
        ExportedDisk("d", "/y.vhd", f"{VHD_DIR}/../../y.vhd", ImageFormat.VHD, 1),
        ExportedDisk("e", "/z.vhd", "", ImageFormat.VHD, 1)])
    with pytest.raises(InvalidParameter) as info:
        writer.write_config(tmp_path, bad)
    text = str(info.value)
    for fragment in ("'not-a-guid', which is not a GUID", "empty virtual machine name",
                     "without a time zone", "'/etc/passwd', which is an absolute path",
                     "contains '..'", "device id 'd' more than once", "'e' names no file"):
        assert fragment in text
    assert list(tmp_path.iterdir()) == []


def test_write_exp_refuses_foreign_instances(tmp_path: Path) -> None:
    other = "11111111-2222-3333-4444-555555555555"
    with pytest.raises(InvalidParameter, match="does not belong to virtual machine"):
        writer.write_exp(tmp_path, GUID, settings_instances(other))
    with pytest.raises(InvalidParameter, match="not a settings class"):
        writer.write_exp(tmp_path, GUID, [CIMInstance("CIM_Foo", properties={"InstanceID": "x"})])
    with pytest.raises(InvalidParameter, match="no instances"):
        writer.write_exp(tmp_path, GUID, [])
    writer.write_exp(tmp_path, other, settings_instances(other))
    with pytest.raises(InvalidParameter, match="already holds"):
        writer.write_exp(tmp_path, GUID, settings_instances())
    assert os.listdir(tmp_path / VMS_DIR) == [f"{other}.exp"]


def test_write_manifest_refuses_a_symlink(export: Export) -> None:
    (export.path / MANIFEST).unlink()
    (export.path / "link").symlink_to("/etc/hostname")
    with pytest.raises(InvalidParameter, match="'link' is a symbolic link"):
        writer.write_manifest(export.path)
    assert not (export.path / MANIFEST).exists()
