"""The import samples end to end: success, an ID clash, a consumed or bad directory."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.cli.conftest import Vsms
from tests.cli.served import Served
from tests.conftest import QEMU_URI
from tests.examples.conftest import Samples

pytestmark = pytest.mark.qemu


def export(served: Served, samples: Samples, vm: str, name: str, tmp_path: Path) -> Path:
    """A fresh export of ``vm`` made by the ExportVirtualSystemEx sample; its per-VM dir."""
    target = served.root / name
    run = samples("export_virtual_system_ex_cs", vm, str(target), cwd=tmp_path)
    assert run.lines[-1] == f"VM '{vm}' were exported successfully.", run
    return target / vm


def vms_named(vsms: Vsms, name: str) -> list[dict[str, str]]:
    return [v for v in json.loads(vsms.ok("--output", "json", "vm", "list").out)
            if v["name"] == name]


def test_import_virtual_system_samples(served: Served, samples: Samples, vsms: Vsms,
                                       source_vm: str, tmp_path: Path) -> None:
    directory = export(served, samples, source_vm, "imp", tmp_path)
    clash = samples("import_virtual_system_vbs", str(directory), "false", cwd=tmp_path)
    assert clash.rc == 1, clash
    assert clash.lines[-3] == "ErrorCode:32774"
    assert clash.lines[-2].startswith("ErrorDescription:a virtual machine with ID ")
    assert "already exists" in clash.lines[-2]
    assert clash.lines[-1] == "importDirectory Failed."
    assert (tmp_path / "ImportVirtualSystem.log").read_text().splitlines() == clash.lines
    before = len(vms_named(vsms, source_vm))
    ok = samples("import_virtual_system_cs", str(directory), "true", cwd=tmp_path)
    assert (ok.rc, ok.lines[-1], ok.err) == (0, "VM were imported successfully.", ""), ok
    assert len(vms_named(vsms, source_vm)) == before + 1
    again = samples("import_virtual_system_cs", str(directory), "true", cwd=tmp_path)
    assert (again.rc, again.lines) == (0, ["Import virtual system failed with error 32774"])
    missing = str(served.root / "no-such-export")
    cs = samples("import_virtual_system_cs", missing, "true", cwd=tmp_path)
    assert (cs.rc, cs.lines) == (0, ["Import virtual system failed with error 32773"])
    vbs = samples("import_virtual_system_vbs", missing, "true", cwd=tmp_path)
    assert (vbs.rc, vbs.lines) == (1, ["ImportVirtualSystem failed with ReturnValue 32773",
                                       "importDirectory Failed."])


def test_import_virtual_system_ex_samples(served: Served, samples: Samples, vsms: Vsms,
                                          source_vm: str, tmp_path: Path) -> None:
    for name, done in (("import_virtual_system_ex_cs", "VM were Imported successfully."),
                       ("import_virtual_system_ex_vbs", "Done")):
        directory = export(served, samples, source_vm, f"ex-{name}", tmp_path)
        before = {v["id"] for v in vms_named(vsms, "NewSampleVM")}
        run = samples(name, str(directory), cwd=tmp_path)
        assert (run.rc, run.lines[-1], run.err) == (0, done, ""), run
        if name.endswith("_cs"):
            assert run.lines[0] == (f"Import Setting Data for the ImportDirectory '{directory}' "
                                    "was retrieved successfully.")
        else:
            log = (tmp_path / "ImportVirtualSystemEx.log").read_text().splitlines()
            assert log == run.lines
        assert (directory / "NewCopy" / "sample-source.vhd").is_file()
        new = [v["id"] for v in vms_named(vsms, "NewSampleVM") if v["id"] not in before]
        assert len(new) == 1
        shown = json.loads(vsms.ok("--output", "json", "vm", "show", new[0]).out)
        assert [d["path"] for d in shown["disks"]] == [
            str(directory / "NewCopy" / "sample-source.vhd")]


def test_import_virtual_system_ex_bad_directory(served: Served, samples: Samples,
                                                tmp_path: Path) -> None:
    missing = served.root / "absent" / "export"
    vbs = samples("import_virtual_system_ex_vbs", str(missing), cwd=tmp_path)
    assert (vbs.rc, vbs.out) == (1, ""), vbs  # CreateFolder of NewCopy: path not found
    assert "runtime error" in vbs.err and not missing.exists()
    cs = samples("import_virtual_system_ex_cs", str(missing), cwd=tmp_path)
    assert cs.rc == 1 and "NullReferenceException" in cs.err, cs  # no import setting data
    assert cs.lines[-1] == "Failed to get the Import Setting Data"
    assert any(line.startswith("Error Code:32773") for line in cs.lines)
    assert any(line.startswith("ErrorDescription: ") and "config.xml" in line
               for line in cs.lines), cs.lines


def _drop_sample_switch() -> None:
    """The samples' CreateSwitch made a libvirt network: remove it (its VMs never ran)."""
    for verb in ("net-undefine", "net-destroy"):  # see tests/switches/conftest.py
        subprocess.run(["virsh", "-c", QEMU_URI, verb, "Switch_For_Import_Export_Sample"],
                       capture_output=True, check=False, timeout=60)


def test_import_more_granular_samples(request: pytest.FixtureRequest,
                                      served: Served, samples: Samples, vsms: Vsms,
                                      source_vm: str, tmp_path: Path) -> None:
    request.addfinalizer(_drop_sample_switch)
    directory = export(served, samples, source_vm, "granular-vbs", tmp_path)
    vbs = samples("import_virtual_system_ex_more_granular_vbs", str(directory), cwd=tmp_path)
    assert (vbs.rc, vbs.lines[-1]) == (0, "Done"), vbs
    # CreateSwitch makes the switch (or finds it made by an earlier run: 32774)
    assert not vbs.lines[0].startswith("CreateSwitch failed") or vbs.lines[0].endswith("32774")
    assert (directory / "Temp.vhd").is_file()
    imported = vms_named(vsms, "NewSampleVM-WithFixups")
    shown = json.loads(vsms.ok("--output", "json", "vm", "show", imported[-1]["id"]).out)
    assert [d["path"] for d in shown["disks"]] == [str(directory / "Temp.vhd")]
    assert [n["switch"] for n in shown["network_adapters"]] == ["Switch_For_Import_Export_Sample"]
    # Temp.vhd is now taken and the export holds a file its manifest does not list
    again = samples("import_virtual_system_ex_more_granular_vbs", str(directory), cwd=tmp_path)
    assert again.rc == 1 and "ErrorCode:32773" in again.lines, again
    log = (tmp_path / "ImportVirtualSystemEx-MoreGranular.log").read_text().splitlines()
    assert log == vbs.lines + again.lines

    directory = export(served, samples, source_vm, "granular-cs", tmp_path)
    cs = samples("import_virtual_system_ex_more_granular_cs", str(directory), cwd=tmp_path)
    assert (cs.rc, cs.lines[-1], cs.err) == (0, "VM were Imported successfully.", ""), cs
    assert "Failed to create Switch_For_Import_Export_Sample switch." in cs.lines  # it exists
    assert (directory / "Temp.vhd").is_file()
