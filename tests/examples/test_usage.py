"""Every sample, given the wrong number of arguments, prints the original's usage text and
exits as the original does (a C# void Main: 0; a VBScript WScript.Quit(1): 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.served import Served
from tests.examples.conftest import Samples

pytestmark = pytest.mark.qemu

USAGE = {
    "import_virtual_system_cs": (0, ["Usage: ImportVirtualSystem importDirectory generateNewID",
                                     "generateNewID:true|false"]),
    "import_virtual_system_vbs": (1, [
        "usage: cscript ImportVirtualSystem.vbs importDirectoryName generateNewID",
        "generateNewID:true|false"]),
    "import_virtual_system_ex_cs": (0, ["Usage: ImportVirtualSystemEx importDirectory"]),
    "import_virtual_system_ex_vbs": (1, [
        "usage: cscript ImportVirtualSystemEx.vbs importDirectoryName"]),
    "import_virtual_system_ex_more_granular_cs": (0, [
        "Usage: ImportVirtualSystemExMoreGranular importDirectory"]),
    "import_virtual_system_ex_more_granular_vbs": (1, [
        "usage: cscript ImportVirtualSystemEx-MoreGranular.vbs importDirectoryName"]),
    "export_virtual_system_cs": (0, ["Usage: ExportVirtualSystem vmName exportDirectory"]),
    "export_virtual_system_vbs": (1, [
        "usage: cscript ExportVirtualSystem.vbs vmName exportDirectoryName"]),
    "export_virtual_system_ex_cs": (0, ["Usage: ExportVirtualSystemEx vmName exportDirectory"]),
    "export_virtual_system_ex_vbs": (1, [
        "usage: cscript ExportVirtualSystemEx.vbs vmName exportDirectoryName"]),
    "export_virtual_system_ex_config_only_cs": (0, [
        "Usage: ExportVirtualSystemEx vmName exportDirectory"]),
    "export_virtual_system_ex_config_only_vbs": (1, [
        "usage: cscript ExportVirtualSystemEx.vbs vmName exportDirectoryName"]),
    "export_virtual_system_ex_snapshots_cs": (0, [
        "Usage: ExportVirtualSystemExSnapshots vmName exportDirectory"]),
    "export_virtual_system_ex_snapshots_vbs": (1, [
        "usage: cscript ExportVirtualSystemExSnapshots.vbs vmName exportDirectoryName"]),
}


def test_every_sample_is_covered() -> None:
    here = Path(__file__).resolve().parents[2] / "examples"
    ported = {p.stem for p in here.glob("*.py") if p.stem.endswith(("_cs", "_vbs"))}
    assert ported == set(USAGE)


@pytest.mark.parametrize("name", sorted(USAGE))
def test_wrong_arguments_print_the_usage(name: str, served: Served, samples: Samples,
                                         tmp_path: Path) -> None:
    rc, lines = USAGE[name]
    for args in ([], ["a", "b", "c"]):
        run = samples(name, *args, cwd=tmp_path)
        assert (run.rc, run.lines) == (rc, lines), run
        assert run.err == ""
    assert list(tmp_path.iterdir()) == []  # the usage is echoed, never logged
