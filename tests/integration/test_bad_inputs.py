"""Every bad input of the issue gets its documented code and a message naming cause and fix,
and nothing is registered or left behind."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import pywbem

from tests import hyperv
from tests.integration.conftest import SourceVM, export_dir
from tests.integration.test_export_import import export, import_
from vsms.app import Service
from vsms.cim import names
from vsms.cim.enums import JobState, ReturnCode
from vsms.client import LocalClient

pytestmark = pytest.mark.qemu


@pytest.fixture
def exported(client: LocalClient, source_vm: SourceVM, storage_root: Path) -> Path:
    return export(client, source_vm, export_dir(storage_root, "exp"))


def imported_from(service: Service, directory: Path) -> list[str]:
    return [vs.guid for vs in service.host.list_systems()
            if vs.imported_from == str(directory)
            or any(str(directory) in m.path for m in vs.media)]


def test_quick_refusals(client: LocalClient, exported: Path, storage_root: Path) -> None:
    cases = [
        (storage_root / "nope", ReturnCode.INVALID_PARAMETER, "does not exist"),
        (exported / "config.xml", ReturnCode.INVALID_PARAMETER, "not a directory"),
        (exported.parent, ReturnCode.INVALID_PARAMETER, f"pass one of its subdirectories: "
                                                        f"'{exported}'"),
        (Path("/etc"), ReturnCode.ACCESS_DENIED, "outside the storage roots"),
    ]
    for directory, code, reason in cases:
        for method in ("ImportVirtualSystem", "GetVirtualSystemImportSettingData"):
            params: dict[str, Any] = {"ImportDirectory": str(directory)}
            if method == "ImportVirtualSystem":
                params["GenerateNewID"] = True
            rv, out = client.vsms(method, **params)
            assert rv == code, (directory, method, rv)
            assert "Job" not in out
            # the reason travels with the ReturnValue (vsms's ErrorDescription out parameter)
            assert reason in out["ErrorDescription"], out


@pytest.mark.parametrize("damage,expected", [
    ("missing_exp", ".exp"),
    ("malformed_exp", ".exp"),
    ("checksum", "checksum"),
    ("disk_absent", "src-disk.vhd"),
    ("escaping_path", ".."),
])
def test_content_problems_fail_the_job(service: Service, client: LocalClient, exported: Path,
                                       source_vm: SourceVM, damage: str, expected: str) -> None:
    exp_file = exported / "Virtual Machines" / f"{source_vm.guid}.exp"
    if damage == "missing_exp":
        exp_file.unlink()
    elif damage == "malformed_exp":
        exp_file.write_text("<CIM><DECLARATION><oops")
    elif damage == "checksum":
        with open(exported / "Virtual Hard Disks" / "src-disk.vhd", "r+b") as f:
            f.seek(600)
            f.write(b"corrupted")
    elif damage == "disk_absent":
        (exported / "Virtual Hard Disks" / "src-disk.vhd").unlink()
    elif damage == "escaping_path":
        cfg = exported / "config.xml"
        cfg.write_text(cfg.read_text().replace("Virtual Hard Disks/src-disk.vhd",
                                               "../../vms/src-disk.vhd"))
    listing = sorted(str(p) for p in exported.rglob("*"))
    job = import_(client, exported, new_id=True)
    assert job["JobState"] == JobState.EXCEPTION
    assert job["ErrorCode"] in (ReturnCode.INVALID_PARAMETER, ReturnCode.FILE_NOT_FOUND)
    assert expected in job["ErrorDescription"], job["ErrorDescription"]
    assert imported_from(service, exported) == []
    assert sorted(str(p) for p in exported.rglob("*")) == listing
    # the directory was not consumed: once repaired it would import
    assert service.store.consumed(str(exported)) is None


def test_unknown_guid_and_running_vm_export(client: LocalClient, source_vm: SourceVM,
                                            storage_root: Path) -> None:
    target = export_dir(storage_root, "exp")
    ghost = pywbem.CIMInstanceName(names.COMPUTER_SYSTEM, keybindings={
        "CreationClassName": names.COMPUTER_SYSTEM,
        "Name": "00000000-0000-0000-0000-0000000000AA"}, namespace=names.NAMESPACE)
    rv, out = client.vsms("ExportVirtualSystem", ComputerSystem=ghost, CopyVmState=True,
                          ExportDirectory=str(target))
    assert rv == ReturnCode.INVALID_PARAMETER
    hyperv.request_state(client, source_vm.path, 2)
    try:
        rv, out = client.vsms("ExportVirtualSystem", ComputerSystem=source_vm.path,
                              CopyVmState=True, ExportDirectory=str(target))
        assert rv == ReturnCode.INVALID_STATE
        assert list(target.iterdir()) == []
    finally:
        hyperv.request_state(client, source_vm.path, 3)


def test_existing_target_is_never_overwritten(client: LocalClient, source_vm: SourceVM,
                                              storage_root: Path) -> None:
    target = export_dir(storage_root, "exp")
    (target / source_vm.name).mkdir()
    (target / source_vm.name / "keep.txt").write_text("mine")
    rv, out = client.vsms("ExportVirtualSystem", ComputerSystem=source_vm.path, CopyVmState=True,
                          ExportDirectory=str(target))
    assert rv == ReturnCode.INVALID_PARAMETER
    assert (target / source_vm.name / "keep.txt").read_text() == "mine"


def test_symlink_out_of_roots_refused(client: LocalClient, source_vm: SourceVM,
                                      storage_root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    link = storage_root / "link"
    os.symlink(outside, link)
    rv, out = client.vsms("ExportVirtualSystem", ComputerSystem=source_vm.path, CopyVmState=True,
                          ExportDirectory=str(link))
    assert rv == ReturnCode.ACCESS_DENIED
    assert list(outside.iterdir()) == []
    shutil.rmtree(outside)


def test_import_settings_of_a_broken_export_reports_through_a_job(
        client: LocalClient, exported: Path, source_vm: SourceVM) -> None:
    (exported / "Virtual Machines" / f"{source_vm.guid}.exp").unlink()
    (exported / "Virtual Hard Disks" / "src-disk.vhd").unlink()
    rv, out = client.vsms("GetVirtualSystemImportSettingData", ImportDirectory=str(exported))
    assert rv == ReturnCode.JOB_STARTED
    assert "ImportSettingData" not in out
    job = client.wait(out["Job"])
    assert job["JobState"] == JobState.EXCEPTION
    # both problems at once, as a compatibility report
    assert ".exp" in job["ErrorDescription"] and "src-disk.vhd" in job["ErrorDescription"]
