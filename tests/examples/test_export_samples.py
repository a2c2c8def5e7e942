"""The export samples end to end: success, and their failure paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli.served import Served
from tests.examples.conftest import Samples

pytestmark = pytest.mark.qemu

# sample -> (log file or None, storage copied, success line)
EXPORTS = {
    "export_virtual_system_cs": (None, True),
    "export_virtual_system_vbs": ("ADDSCSIContoller.log", True),
    "export_virtual_system_ex_cs": (None, True),
    "export_virtual_system_ex_vbs": ("ExportVirtualSystemExLog.log", True),
    "export_virtual_system_ex_config_only_cs": (None, False),
    "export_virtual_system_ex_config_only_vbs": ("ExportVirtualSystemExLog.log", False),
}


def progress_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("In progress... ")]


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_export_sample_exports(name: str, served: Served, samples: Samples, source_vm: str,
                               tmp_path: Path) -> None:
    log, with_storage = EXPORTS[name]
    target = served.root / f"out-{name}"  # missing: the samples create it
    run = samples(name, source_vm, str(target), cwd=tmp_path)
    assert run.err == "", run
    for line in progress_lines(run.lines):
        assert line.endswith("% completed.") and line[15:-12].isdigit(), line
    if log is None:
        assert (run.rc, run.lines[-1]) == (0, f"VM '{source_vm}' were exported successfully.")
    else:
        assert (run.rc, run.lines[-1]) == (0, "Done")
        assert (tmp_path / log).read_text().splitlines() == run.lines
    export = target / source_vm
    assert (export / "config.xml").is_file()
    assert sorted(os.listdir(export / "Virtual Hard Disks")) == (
        ["sample-source.vhd"] if with_storage else [])


def test_export_samples_fail_as_the_originals(served: Served, samples: Samples, source_vm: str,
                                              tmp_path: Path) -> None:
    target = served.root / "taken"
    (target / source_vm).mkdir(parents=True)
    (target / source_vm / "something").write_text("x")
    cs = samples("export_virtual_system_ex_cs", source_vm, str(target), cwd=tmp_path)
    assert (cs.rc, cs.lines) == (0, ["Export virtual system failed with error:32773"])
    cs1 = samples("export_virtual_system_cs", source_vm, str(target), cwd=tmp_path)
    assert (cs1.rc, cs1.lines) == (0, ["Export virtual system failed with error 32773"])
    vbs = samples("export_virtual_system_ex_vbs", source_vm, str(target), cwd=tmp_path)
    assert (vbs.rc, vbs.lines) == (1, ["ExportVirtualSystemEx failed with ReturnValue 32773",
                                       "ExportVirtualSystemEx Failed."])
    assert (tmp_path / "ExportVirtualSystemExLog.log").read_text().splitlines() == vbs.lines
    vbs1 = samples("export_virtual_system_vbs", source_vm, str(target), cwd=tmp_path)
    assert (vbs1.rc, vbs1.lines) == (1, ["ExportVirtualSystem failed with ReturnValue 32773",
                                         "ExportVirtualSystem Failed."])


def test_unknown_vm(served: Served, samples: Samples, tmp_path: Path) -> None:
    target = served.root / "never-made"
    cs = samples("export_virtual_system_ex_cs", "no-such-vm", str(target), cwd=tmp_path)
    assert cs.rc == 1 and cs.out == "" and "NullReferenceException" in cs.err, cs
    assert not target.exists()
    vbs = samples("export_virtual_system_vbs", "no-such-vm", str(target), cwd=tmp_path)
    assert (vbs.rc, vbs.lines) == (1, ["Err.Number: -2147217406", "Err.Description:Not found"])
    assert (tmp_path / "ADDSCSIContoller.log").read_text().splitlines() == vbs.lines


def test_missing_parent_folder_stops_the_vbscript(served: Served, samples: Samples,
                                                  source_vm: str, tmp_path: Path) -> None:
    target = served.root / "no" / "parent"
    vbs = samples("export_virtual_system_ex_vbs", source_vm, str(target), cwd=tmp_path)
    assert vbs.rc == 1 and "runtime error: Path not found" in vbs.err, vbs
    cs = samples("export_virtual_system_ex_cs", source_vm, str(target), cwd=tmp_path)
    assert (cs.rc, cs.lines[-1]) == (0, f"VM '{source_vm}' were exported successfully.")


def test_snapshot_samples_find_no_snapshot(served: Served, samples: Samples, source_vm: str,
                                           tmp_path: Path) -> None:
    target = served.root / "snapshots"
    cs = samples("export_virtual_system_ex_snapshots_cs", source_vm, str(target), cwd=tmp_path)
    assert (cs.rc, cs.lines) == (0, ["There are not snapshots in the VM to be exported..."]), cs
    assert not target.exists()
    vbs = samples("export_virtual_system_ex_snapshots_vbs", source_vm, str(target), cwd=tmp_path)
    assert (vbs.rc, vbs.lines) == (1, [
        "No snapshots were found on the VM when trying to export snapshot as VM.",
        "ExportVirtualSystemExSnapshots Failed."]), vbs
    assert target.is_dir() and list(target.iterdir()) == []  # the original creates it first
    log = tmp_path / "ExportVirtualSystemEx-ExportSnapshot.log"
    assert log.read_text().splitlines() == vbs.lines
