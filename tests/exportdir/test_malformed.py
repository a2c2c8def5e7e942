"""Malformed exports: every problem is named, with the file and the fix, and all come together."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
from pywbem import CIMInstance

from tests.exportdir.conftest import DISK1, DISK2, GUID, Export, settings_instances
from vsms.errors import InvalidParameter, ValidationFailed
from vsms.exportdir.expfile import exp_to_xml
from vsms.exportdir.layout import CONFIG, MANIFEST, VHD_DIR, VMS_DIR
from vsms.exportdir.reader import read_export

EXP = f"{VMS_DIR}/{GUID}.exp"


def problems_of(path: Path, **kwargs: object) -> list[str]:
    with pytest.raises(ValidationFailed) as info:
        read_export(path, **kwargs)  # type: ignore[arg-type]
    assert str(path.name) in str(info.value)
    return info.value.problems


def has(problems: list[str], *fragments: str) -> None:
    assert any(all(f in p for f in fragments) for p in problems), (fragments, problems)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


# --- quick checks: InvalidParameter on their own -------------------------------------------

def test_directory_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="does not exist: pass the per-VM subdirectory"):
        read_export(tmp_path / "nope")


def test_directory_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(InvalidParameter, match="is not a directory"):
        read_export(tmp_path / "f")


def test_export_root_names_its_subdirectories(export: Export) -> None:
    root = export.path.parent
    (root / "not-an-export").mkdir()
    with pytest.raises(InvalidParameter) as info:
        read_export(root)
    msg = str(info.value)
    assert "is the export root, not an exported virtual machine" in msg
    assert f"pass one of its subdirectories: '{export.path}'" in msg
    assert "not-an-export" not in msg


# --- config.xml --------------------------------------------------------------------------

def test_config_missing(export: Export) -> None:
    (export.path / CONFIG).unlink()
    export.rehash()
    p = problems_of(export.path)
    assert len(p) == 1
    has(p, "config.xml is missing", "export it again")


def test_config_not_xml(export: Export) -> None:
    (export.path / CONFIG).write_text("this is not < xml")
    export.rehash()
    p = problems_of(export.path)
    has(p, "config.xml is refused because it is not well-formed XML", "restore config.xml")


def test_config_wrong_root(export: Export) -> None:
    (export.path / CONFIG).write_text("<configuration/>")
    export.rehash()
    has(problems_of(export.path), "root element <configuration> instead of <vsms-export>")


def test_config_bad_values_all_reported(export: Export) -> None:
    cfg = export.path / CONFIG
    edit(cfg, GUID, "zzz")
    edit(cfg, 'storage="true"', 'storage="yes"')
    edit(cfg, 'format="vhdx"', 'format="vmdk"')
    edit(cfg, "2026-11-27T10:30:00.123456+00:00", "yesterday")
    edit(cfg, 'virtual-size="1048576"', f'virtual-size="{"9" * 5000}"')
    export.rehash()
    p = problems_of(export.path)
    has(p, CONFIG, "'zzz', which is not a GUID")
    has(p, "storage=…> the value 'yes', not 'true' or 'false'")
    has(p, "format 'vmdk' (expected one of vpc, vhdx, qcow2, raw)")
    has(p, "export time 'yesterday', not an ISO 8601 time")
    has(p, f"'{DISK1}' the virtual size '999", "not a number of bytes")


def test_config_unexpected_and_missing_elements(export: Export) -> None:
    cfg = export.path / CONFIG
    edit(cfg, "<source-host>testhost</source-host>", "<extra>1</extra>")
    export.rehash()
    p = problems_of(export.path)
    has(p, "unexpected <extra> in <vsms-export>")
    has(p, "no <source-host> element")


def test_duplicate_device_ids(export: Export) -> None:
    edit(export.path / CONFIG, DISK2, DISK1)
    export.rehash()
    has(problems_of(export.path), f"device id '{DISK1}' more than once")


def test_config_absolute_disk_path(export: Export) -> None:
    edit(export.path / CONFIG, f"<file>{VHD_DIR}/disk1.vhd</file>", "<file>/etc/passwd</file>")
    export.rehash()
    has(problems_of(export.path), "'/etc/passwd', which is an absolute path")


def test_config_dotdot_disk_path(export: Export) -> None:
    edit(export.path / CONFIG, f"<file>{VHD_DIR}/disk1.vhd</file>",
         f"<file>{VHD_DIR}/../../outside.vhd</file>")
    export.rehash()
    has(problems_of(export.path), "contains '..'", f"under '{VHD_DIR}/'")


def test_config_disk_path_outside_vhd_dir(export: Export) -> None:
    edit(export.path / CONFIG, f"<file>{VHD_DIR}/disk1.vhd</file>", f"<file>{CONFIG}</file>")
    export.rehash()
    has(problems_of(export.path), f"'{CONFIG}', which is not under '{VHD_DIR}/'")


def test_config_disk_resolves_outside_through_symlink(export: Export, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "disk1.vhd").write_bytes(b"x")
    (export.path / VHD_DIR / "disk1.vhd").unlink()
    (export.path / VHD_DIR / "sub").symlink_to(outside)
    edit(export.path / CONFIG, f"{VHD_DIR}/disk1.vhd", f"{VHD_DIR}/sub/disk1.vhd")
    p = problems_of(export.path)
    has(p, f"'{VHD_DIR}/sub' is a symbolic link", "replace it")
    has(p, f"'{VHD_DIR}/sub/disk1.vhd' of disk '{DISK1}'", "resolves outside the export")


# --- the .exp file ------------------------------------------------------------------------

def test_vms_dir_missing(export: Export) -> None:
    (export.path / EXP).unlink()
    (export.path / VMS_DIR).rmdir()
    export.rehash()
    has(problems_of(export.path), f"directory '{VMS_DIR}' is missing")


def test_no_exp_file(export: Export) -> None:
    (export.path / EXP).rename(export.path / VMS_DIR / "settings.xml")
    export.rehash()
    has(problems_of(export.path), f"'{VMS_DIR}' holds no .exp file")


def test_several_exp_files(export: Export) -> None:
    other = "11111111-2222-3333-4444-555555555555"
    (export.path / VMS_DIR / f"{other}.exp").write_bytes(exp_to_xml(settings_instances(other)))
    export.rehash()
    has(problems_of(export.path), "holds several .exp files", f"{other}.exp", "remove the extra")


def test_exp_name_does_not_match_guid(export: Export) -> None:
    other = "11111111-2222-3333-4444-555555555555"
    (export.path / EXP).rename(export.path / VMS_DIR / f"{other}.exp")
    export.rehash()
    has(problems_of(export.path), f"'{VMS_DIR}/{other}.exp' does not match the virtual machine "
        f"GUID {GUID} in config.xml", f"named '{GUID}.exp'")


def test_exp_not_xml(export: Export) -> None:
    (export.path / EXP).write_bytes(b"\x00\x01binary")
    export.rehash()
    has(problems_of(export.path), f"'{EXP}' is refused because it is not well-formed XML")


def test_exp_not_cim_xml(export: Export) -> None:
    (export.path / EXP).write_text("<settings><vm/></settings>")
    export.rehash()
    has(problems_of(export.path), f"'{EXP}' is not a CIM-XML document")


def test_exp_without_instances(export: Export) -> None:
    (export.path / EXP).write_bytes(exp_to_xml([]))
    export.rehash()
    has(problems_of(export.path), f"'{EXP}' holds no instances")


def test_exp_with_foreign_instances(export: Export) -> None:
    foreign = CIMInstance("CIM_LogicalFile", properties={"Name": "/etc/passwd"})
    stranger = settings_instances("11111111-2222-3333-4444-555555555555")[2]
    (export.path / EXP).write_bytes(exp_to_xml([*settings_instances(), foreign, stranger]))
    export.rehash()
    p = problems_of(export.path)
    has(p, "instance of CIM_LogicalFile, which is not a settings class")
    has(p, "does not belong to virtual machine " + GUID)


def test_exp_with_broken_instance(export: Export) -> None:
    edit(export.path / EXP, '<PROPERTY NAME="SettingType" TYPE="uint16"><VALUE>3</VALUE>',
         '<PROPERTY NAME="SettingType" TYPE="uint16"><VALUE>three</VALUE>')
    export.rehash()
    has(problems_of(export.path), "instance of Msvm_VirtualSystemSettingData that is not valid "
        "CIM-XML")


def test_exp_holding_a_class(export: Export) -> None:
    edit(export.path / EXP, "</DECLGROUP>",
         '<VALUE.OBJECT><CLASS NAME="Msvm_X"/></VALUE.OBJECT></DECLGROUP>')
    export.rehash()
    has(problems_of(export.path), "has <CLASS> where a <VALUE.OBJECT> holding one <INSTANCE>")


# --- manifest.sha256 ----------------------------------------------------------------------

def test_manifest_missing(export: Export) -> None:
    (export.path / MANIFEST).unlink()
    p = problems_of(export.path)
    assert len(p) == 1
    has(p, "manifest.sha256 is missing", "written last")


def test_manifest_malformed_line(export: Export) -> None:
    with (export.path / MANIFEST).open("a") as fh:
        fh.write("not a checksum line\n")
    has(problems_of(export.path), "manifest.sha256 line 5 is not '<sha256>  <relative path>'")


def test_manifest_absolute_and_dotdot_paths(export: Export) -> None:
    with (export.path / MANIFEST).open("a") as fh:
        fh.write(f"{'0' * 64}  /etc/passwd\n{'1' * 64}  {VHD_DIR}/../../x\n")
    p = problems_of(export.path)
    has(p, "line 5 names '/etc/passwd', which is an absolute path")
    has(p, "line 6 names 'Virtual Hard Disks/../../x', which contains '..'")


def test_manifest_entry_resolving_outside(export: Export, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s")
    (export.path / "Snapshots" / "out").symlink_to(tmp_path)
    with (export.path / MANIFEST).open("a") as fh:
        fh.write(f"{'0' * 64}  Snapshots/out/secret\n")
    p = problems_of(export.path)
    has(p, "'Snapshots/out' is a symbolic link")
    has(p, "names 'Snapshots/out/secret', which resolves outside the export directory")


def test_manifest_lists_a_missing_file(export: Export) -> None:
    (export.path / VHD_DIR / "data.vhdx").unlink()
    p = problems_of(export.path)
    has(p, f"'{VHD_DIR}/data.vhdx' is listed in manifest.sha256 but is missing")
    has(p, f"the file '{VHD_DIR}/data.vhdx' of disk '{DISK2}' in config.xml is missing")


def test_checksum_differs(export: Export) -> None:
    with (export.path / VHD_DIR / "disk1.vhd").open("r+b") as fh:
        fh.seek(100)
        fh.write(b"\xff")
    p = problems_of(export.path)
    assert p == [f"'{VHD_DIR}/disk1.vhd' does not match its checksum in manifest.sha256: the "
                 "file is damaged or was changed; copy it again from the original export"]
    read_export(export.path, verify=False)  # checksums are skipped, structure is still fine


def test_file_not_in_manifest(export: Export) -> None:
    (export.path / "Snapshots" / "stray.bin").write_bytes(b"x")
    p = problems_of(export.path, verify=False)
    assert p == ["'Snapshots/stray.bin' is not listed in manifest.sha256: remove it, or export "
                 "the virtual machine again if it belongs to the export"]


# --- disks --------------------------------------------------------------------------------

def test_disk_of_the_wrong_format(export: Export) -> None:
    edit(export.path / CONFIG, 'format="vhdx"', 'format="qcow2"')
    export.rehash()
    p = problems_of(export.path)
    assert p == [f"the file '{VHD_DIR}/data.vhdx' of disk '{DISK2}' in config.xml is a vhdx "
                 "image, not qcow2 as config.xml says: restore it from the original export or "
                 "export the virtual machine again"]


def test_disk_probe_failure_is_a_problem(export: Export) -> None:
    from vsms.errors import SystemNotAvailable
    from vsms.model.vm import ImageFormat

    def probe(path: str) -> ImageFormat:
        raise SystemNotAvailable(f"cannot read {path}: I/O error")

    p = problems_of(export.path, probe=probe)
    has(p, f"of disk '{DISK1}'", "cannot be examined (cannot read", "I/O error")


# --- special files ------------------------------------------------------------------------

def test_fifo_socket_and_device(export: Export) -> None:
    os.mkfifo(export.path / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(export.path / "Snapshots" / "sock"))
        try:
            os.mknod(export.path / "dev", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
            device = True
        except PermissionError:
            device = False
        p = problems_of(export.path)
    finally:
        sock.close()
    has(p, "'fifo' is a FIFO: an export may hold only regular files and directories")
    has(p, "'Snapshots/sock' is a socket")
    if device:
        has(p, "'dev' is a device file")


def test_config_xml_as_symlink_is_not_followed(export: Export, tmp_path: Path) -> None:
    target = tmp_path / "real-config.xml"
    (export.path / CONFIG).rename(target)
    (export.path / CONFIG).symlink_to(target)
    p = problems_of(export.path)
    has(p, "'config.xml' is a symbolic link")
    has(p, "config.xml is missing or is not a regular file")


# --- many problems at once ----------------------------------------------------------------

def test_several_problems_reported_together(export: Export) -> None:
    edit(export.path / CONFIG, 'format="vpc"', 'format="vhdx"')
    (export.path / EXP).write_text("<CIM/>")
    (export.path / VHD_DIR / "data.vhdx").unlink()
    (export.path / "notes.txt").write_text("hello")
    (export.path / "link").symlink_to("/etc")
    with (export.path / MANIFEST).open("a") as fh:
        fh.write("garbage\n")
    p = problems_of(export.path)
    has(p, "'link' is a symbolic link")
    has(p, "not a CIM-XML document")
    has(p, "line 5 is not '<sha256>  <relative path>'")
    has(p, "'config.xml' does not match its checksum")
    has(p, f"'{EXP}' does not match its checksum")
    has(p, f"'{VHD_DIR}/data.vhdx' is listed in manifest.sha256 but is missing")
    has(p, "'notes.txt' is not listed in manifest.sha256")
    has(p, f"'{VHD_DIR}/disk1.vhd' of disk '{DISK1}' in config.xml is a vpc image, not vhdx")
    has(p, f"'{VHD_DIR}/data.vhdx' of disk '{DISK2}' in config.xml is missing")
    assert len(p) == 9
