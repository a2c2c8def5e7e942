"""Issue 9, findings 4 and 5, replayed deterministically against a real WBEM server.

A real Service on qemu:///system is served over HTTP on 127.0.0.1 and driven with pywbem. A hook
in the job (the function the job calls between the method's checks and its use of the path is
wrapped, in this process) does what the attacker did at that moment: swaps the target folder
for a symbolic link to a folder outside the storage roots, or creates a file at the target.
The job must fail with an ErrorDescription naming the cause, write nothing outside the roots,
register nothing, and delete nothing it did not create.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pywbem

from tests.conftest import fresh_dir
from tests.e2e import wbemflow as flow
from tests.e2e.conftest import Served
from tests.e2e.conftest import served as served
from vsms.cim import names
from vsms.cim.embedded import parse_instance, serialize_instance
from vsms.cim.enums import JobState, ReturnCode
from vsms.disks import anchor
from vsms.operations import files, import_

MIB = 2**20


@pytest.fixture
def conn(served: Served) -> Iterator[pywbem.WBEMConnection]:
    c = served.connect()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def outside() -> Iterator[Path]:
    """A folder outside the storage roots holding a file nobody may touch."""
    folder = fresh_dir()
    (folder / "victim.qcow2").write_bytes(b"precious, not vsms's")
    yield folder
    for entry in folder.iterdir():
        entry.unlink()
    folder.rmdir()


def _outside_untouched(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == ["victim.qcow2"]
    assert (folder / "victim.qcow2").read_bytes() == b"precious, not vsms's"


def _swap(folder: Path, outside: Path) -> Path:
    """The attack: rename ``folder`` away and put a symbolic link to ``outside`` in its place."""
    moved = folder.with_name(folder.name + "-moved")
    os.rename(folder, moved)
    os.symlink(outside, folder)
    return moved


def _export(conn: pywbem.WBEMConnection, served: Served) -> Path:
    vm = flow.vm_with_disk(conn, served.root, f"src-{served.token}")
    flow.export(conn, vm, served.root / "exp")
    (manifest,) = (served.root / "exp").rglob("manifest.sha256")
    return manifest.parent


def _start_import(conn: pywbem.WBEMConnection, exp: Path, target: Path, name: str) -> Any:
    rv, out = flow.invoke(conn, names.VSMS, "GetVirtualSystemImportSettingData",
                          ImportDirectory=str(exp))
    assert rv == ReturnCode.COMPLETED
    isd = out["ImportSettingData"]
    isd = parse_instance(isd) if isinstance(isd, str) else isd
    isd["CreateCopy"] = True
    isd["GenerateNewId"] = True
    isd["Name"] = name
    isd["TargetResourcePaths"] = [str(target)]
    rv, out = flow.invoke(conn, names.VSMS, "ImportVirtualSystemEx", ImportDirectory=str(exp),
                          ImportSettingData=serialize_instance(isd))
    assert rv == ReturnCode.JOB_STARTED, out
    return flow.wait_job(conn, out["Job"])


def _before(monkeypatch: pytest.MonkeyPatch, owner: Any, attr: str,
            hook: Callable[..., None], when: Callable[..., bool] = lambda *a, **k: True) -> None:
    """Run ``hook`` once, in the job, just before the first call of ``owner.attr`` that
    ``when`` accepts."""
    real = getattr(owner, attr)
    fired: list[bool] = []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not fired and when(*args, **kwargs):
            fired.append(True)
            hook(*args, **kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, attr, wrapper)


def _no_vm_named(served: Served, name: str) -> None:
    assert [vs.guid for vs in served.service.host.list_systems() if vs.name == name] == []


def test_import_target_folder_swapped_before_the_copy(
        served: Served, conn: pywbem.WBEMConnection, outside: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 5: the folder becomes a link after the checks: the job fails before writing."""
    exp = _export(conn, served)
    folder = served.root / "target"
    folder.mkdir(mode=0o755)
    moved: list[Path] = []
    _before(monkeypatch, files, "open_target_dir",
            lambda *a, **k: moved.append(_swap(folder, outside)))
    name = f"swapped-{served.token}"
    job = _start_import(conn, exp, folder / "disk.qcow2", name)
    assert job["JobState"] == JobState.EXCEPTION
    assert job["ErrorCode"] == ReturnCode.ACCESS_DENIED
    assert "symbolic link" in job["ErrorDescription"]
    assert str(folder) in job["ErrorDescription"]
    _outside_untouched(outside)
    assert list(moved[0].iterdir()) == []
    _no_vm_named(served, name)


def test_import_target_folder_swapped_while_qemu_img_converts(
        served: Served, conn: pywbem.WBEMConnection, outside: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 5: the swap comes after the target was created: qemu-img still writes into the
    file the job created (inside the roots), and the job refuses to register a path that no
    longer leads to it. Finding 4: its rollback does not delete the file of the same name
    outside the roots that the old path now leads to."""
    exp = _export(conn, served)
    folder = served.root / "target"
    folder.mkdir(mode=0o755)
    same_name = outside / "disk.qcow2"
    same_name.write_bytes(b"outside, same name")
    moved: list[Path] = []
    _before(monkeypatch, import_, "convert_file",
            lambda *a, **k: moved.append(_swap(folder, outside)))
    name = f"converted-{served.token}"
    job = _start_import(conn, exp, folder / "disk.qcow2", name)
    assert job["JobState"] == JobState.EXCEPTION
    assert "cannot be registered" in job["ErrorDescription"]
    assert "symbolic link" in job["ErrorDescription"]
    assert same_name.read_bytes() == b"outside, same name"
    same_name.unlink()
    _outside_untouched(outside)
    # what was written stayed inside the roots, in the folder the job had opened
    assert [p.name for p in moved[0].iterdir()] == ["disk.qcow2"]
    assert (moved[0] / "disk.qcow2").read_bytes()[:4] == b"QFI\xfb"
    _no_vm_named(served, name)


def test_import_rollback_spares_a_file_that_took_the_target_name(
        served: Served, conn: pywbem.WBEMConnection, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 4: another program creates the target after the checks; the import fails and
    its rollback leaves that file alone."""
    exp = _export(conn, served)
    folder = served.root / "target"
    folder.mkdir(mode=0o755)
    target = folder / "disk.qcow2"
    def foreign(*args: Any, **kwargs: Any) -> None:
        target.write_bytes(b"someone else's disk")

    _before(monkeypatch, files, "open_target_dir", foreign)
    name = f"raced-{served.token}"
    job = _start_import(conn, exp, target, name)
    assert job["JobState"] == JobState.EXCEPTION
    assert "already exists" in job["ErrorDescription"]
    assert target.read_bytes() == b"someone else's disk"
    assert [p.name for p in folder.iterdir()] == ["disk.qcow2"]
    _no_vm_named(served, name)


def test_a_running_import_target_is_refused_to_every_other_call(
        served: Served, conn: pywbem.WBEMConnection, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 4: while the import converts, the image service and an export are refused
    (32774) the target the import reserved; the import completes."""
    exp = _export(conn, served)
    folder = served.root / "target"
    folder.mkdir(mode=0o755)
    target = folder / "disk.qcow2"
    answers: list[tuple[str, int]] = []

    def other_calls(*args: Any, **kwargs: Any) -> None:
        other = served.connect()
        try:
            rv, out = flow.invoke(other, names.IMAGE_SERVICE, "CreateDynamicVirtualHardDisk",
                                  Path=str(target), MaxInternalSize=pywbem.Uint64(MIB))
            answers.append(("create", rv))
            rv, out = flow.invoke(other, names.IMAGE_SERVICE, "CreateDynamicVirtualHardDisk",
                                  Path=str(folder / "other.vhd"),
                                  MaxInternalSize=pywbem.Uint64(MIB))
            answers.append(("create elsewhere", rv))
            if rv == ReturnCode.JOB_STARTED:
                flow.wait_job(other, out["Job"])
        finally:
            other.close()

    _before(monkeypatch, import_, "convert_file", other_calls)
    job = _start_import(conn, exp, target, f"reserved-{served.token}")
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    assert answers == [("create", ReturnCode.SYSTEM_IN_USE),
                       ("create elsewhere", ReturnCode.JOB_STARTED)]
    assert target.read_bytes()[:4] == b"QFI\xfb"
    assert served.service.context.roots.targets.held() == []


def test_export_directory_swapped_before_the_job_writes(
        served: Served, conn: pywbem.WBEMConnection, outside: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 5 for export: the ExportDirectory becomes a link after the checks."""
    vm = flow.vm_with_disk(conn, served.root, f"exp-{served.token}")
    folder = served.root / "exports"
    folder.mkdir(mode=0o755)
    moved: list[Path] = []
    _before(monkeypatch, anchor, "open_dir",
            lambda *a, **k: moved.append(_swap(folder, outside)),
            when=lambda path, *a, **k: Path(path) == folder)
    job = flow.run_job(conn, names.VSMS, "ExportVirtualSystem", ComputerSystem=vm,
                       CopyVmState=True, ExportDirectory=str(folder))
    assert job["JobState"] == JobState.EXCEPTION
    assert "symbolic link" in job["ErrorDescription"]
    _outside_untouched(outside)
    assert list(moved[0].iterdir()) == []


def test_disk_folder_swapped_before_the_image_service_writes(
        served: Served, conn: pywbem.WBEMConnection, outside: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 5 for disk creation (Msvm_ImageManagementService)."""
    folder = served.root / "disks"
    folder.mkdir(mode=0o755)
    moved: list[Path] = []
    _before(monkeypatch, anchor, "open_parent",
            lambda *a, **k: moved.append(_swap(folder, outside)))
    job = flow.run_job(conn, names.IMAGE_SERVICE, "CreateDynamicVirtualHardDisk",
                       Path=str(folder / "new.vhd"), MaxInternalSize=pywbem.Uint64(MIB))
    assert job["JobState"] == JobState.EXCEPTION
    assert "symbolic link" in job["ErrorDescription"]
    _outside_untouched(outside)
    assert list(moved[0].iterdir()) == []
