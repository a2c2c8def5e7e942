"""``vsms export``, ``vsms import`` and ``vsms import-settings`` end to end."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests import hyperv
from tests.cli.conftest import Vsms
from tests.cli.served import Served

pytestmark = pytest.mark.qemu


@pytest.fixture(scope="module")
def source(served: Served, vsms: Vsms) -> dict[str, str]:
    """A VM with a dynamic VHD holding 2 MiB of data and a network adapter."""
    disk = served.root / "source.vhd"
    hyperv.make_vhd(str(disk), "64M", data_mb=2)
    name = f"src-{served.root.name}"
    vm = vsms.ok("--output", "json", "vm", "create", name, "--memory", "64", "--disk",
                 str(disk), "--nic").json()["vm"]
    return {"name": name, "id": vm["id"], "disk": str(disk)}


def fresh_dir(served: Served, name: str) -> Path:
    d = served.root / name
    d.mkdir(mode=0o755)
    return d


def same_image(a: str, b: str) -> bool:
    done = subprocess.run(["qemu-img", "compare", "-f", "vpc", "-F", "vpc", a, b],
                          capture_output=True, text=True, timeout=120, check=False)
    return done.returncode == 0


def test_export_then_import_in_place_and_as_copy(served: Served, vsms: Vsms,
                                                 source: dict[str, str]) -> None:
    exp = fresh_dir(served, "exports")
    res = vsms.ok("--output", "json", "export", source["name"], str(exp))
    sub = exp / source["name"]
    assert res.json()["directory"] == str(sub) and res.json()["with_storage"] is True
    assert (sub / "Virtual Hard Disks" / "source.vhd").is_file()
    again = vsms("export", source["name"], str(exp))
    assert again.rc == 1 and "already exists and is not empty" in again.err, again

    preview = vsms.ok("import-settings", str(sub)).out
    assert f"define the virtual machine '{source['name']}'" in preview
    assert f"Warning: a virtual machine named '{source['name']}' exists already " \
           f"({source['id']})" in preview
    assert f"disk 1: {source['disk']} -> from {sub}/Virtual Hard Disks/source.vhd" in preview
    assert "network adapter 1: switch (not connected)" in preview
    assert preview.rstrip().endswith("Problems: none found.")

    clash = vsms("import", str(sub))
    assert clash.rc == 1 and "already exists" in clash.err and "(32774)" in clash.err, clash
    imported = vsms.ok("--output", "json", "import", str(sub), "--new-id").json()
    assert imported["vm"]["name"] == source["name"] and imported["vm"]["id"] != source["id"]
    assert imported["copy"] is False and imported["job"]["state"] == "Completed"
    twice = vsms("import", str(sub), "--new-id")
    assert twice.rc == 1 and "ImportVirtualSystem failed: System is in use (32774)" in twice.err

    exp2 = fresh_dir(served, "exports2")
    vsms.ok("export", source["id"], str(exp2))
    copies = fresh_dir(served, "copies")
    name = f"copy-{served.root.name}"
    res = vsms.ok("import", str(exp2 / source["name"]), "--copy", "--to", str(copies),
                  "--name", name, "--new-id")
    assert res.out.startswith(f"Imported virtual machine '{name}' (")
    assert res.out.rstrip().endswith("as a copy.")
    shown = vsms.ok("--output", "json", "vm", "show", name).json()
    assert shown["disks"] == [{"location": "IDE 0:0", "path": str(copies / "source.vhd")}]
    assert same_image(source["disk"], str(copies / "source.vhd"))
    # the export stays importable
    assert vsms.ok("import-settings", str(exp2 / source["name"])).rc == 0
    bad = vsms("import", str(exp2 / source["name"]), "--to", str(copies))
    assert bad.rc == 2 and "--to only makes sense with --copy" in bad.err


def test_config_only_export_without_subdirectory(served: Served, vsms: Vsms,
                                                 source: dict[str, str]) -> None:
    target = fresh_dir(served, "config-only")
    res = vsms.ok("export", source["id"], str(target), "--config-only", "--no-subdirectory")
    assert res.out.strip() == (f"Exported virtual machine '{source['name']}' (configuration) "
                               f"to {target}.")
    assert (target / "config.xml").is_file()
    assert os.listdir(target / "Virtual Hard Disks") == []
    plan = vsms.ok("--output", "json", "import-settings", str(target)).json()
    assert plan["ok"] is True and plan["problems"] == []
    assert plan["disks"][0]["source"] == source["disk"] and plan["disks"][0]["in_use"] is True
    assert any("an import in place would fail" in w for w in plan["warnings"])


def test_import_settings_reports_every_problem(served: Served, vsms: Vsms,
                                               source: dict[str, str]) -> None:
    root = fresh_dir(served, "broken")
    vsms.ok("export", source["id"], str(root))
    as_root = vsms("import-settings", str(root))
    assert as_root.rc == 1 and "export root" in as_root.out, as_root
    assert "would fail" in as_root.err
    sub = root / source["name"]
    (sub / "Virtual Hard Disks" / "source.vhd").unlink()
    res = vsms("--output", "json", "import-settings", str(sub))
    assert res.rc == 1
    doc = res.json()
    assert doc["ok"] is False and len(doc["problems"]) >= 1
    assert any("source.vhd" in p for p in doc["problems"]), doc["problems"]


def test_import_and_export_refusals_say_why(served: Served, vsms: Vsms,
                                            source: dict[str, str], tmp_path: Path) -> None:
    missing = vsms("import", str(served.root / "no-such-export"))
    assert missing.rc == 1 and "does not exist" in missing.err
    outside = vsms("--output", "json", "import", str(tmp_path))
    assert outside.rc == 1 and outside.json()["return_value"] == 32769, outside
    assert "Access Denied (32769)" in outside.err and "storage roots" in outside.err
    no_dir = vsms("export", source["id"], str(served.root / "nowhere"))  # roots not known here
    assert no_dir.rc == 1 and "does not exist, and vsms creates only directories under a " \
        "storage root" in no_dir.err, no_dir
    assert not (served.root / "nowhere").exists()
    name = f"run-{served.root.name}"
    vsms.ok("vm", "create", name, "--memory", "64")
    try:
        vsms.ok("vm", "start", name)
        running = vsms("export", name, str(fresh_dir(served, "running")))
        assert running.rc == 1 and "Invalid state for this operation (32775)" in running.err
        assert "must be turned off" in running.err
    finally:
        vsms("vm", "stop", name)
        vsms.ok("vm", "destroy", name)


def on_host(served: Served) -> Vsms:
    """The vsms command as it runs on the service's host, with the service's storage roots in
    its settings (VSMS_STORAGE_ROOTS)."""
    return Vsms(served.url, (served.user, served.password),
                {**os.environ, "VSMS_STORAGE_ROOTS": str(served.root)})


def test_missing_directories_are_created_under_the_roots(served: Served,
                                                         source: dict[str, str]) -> None:
    vsms = on_host(served)
    exports = served.root / "made" / "exports"  # neither exists
    res = vsms.ok("--output", "json", "export", source["id"], str(exports))
    assert f"vsms: created the export directory {exports}" in res.err
    assert res.json()["created"] == [str(exports.parent), str(exports)]
    sub = exports / source["name"]
    assert (sub / "Virtual Hard Disks" / "source.vhd").is_file()
    assert oct(exports.stat().st_mode & 0o777) == "0o755"
    copies = served.root / "made" / "copies" / "deep"
    name = f"made-{served.root.name}"
    res = vsms.ok("import", str(sub), "--copy", "--to", str(copies), "--new-id", "--name", name)
    assert f"vsms: created the copy target directory {copies}" in res.err
    assert (copies / "source.vhd").is_file()
    shown = vsms.ok("--output", "json", "vm", "show", name).json()
    assert shown["disks"] == [{"location": "IDE 0:0", "path": str(copies / "source.vhd")}]
    vsms.ok("vm", "destroy", name)


def test_directories_are_not_created_outside_the_roots_or_left_after_a_failure(
        served: Served, source: dict[str, str], tmp_path: Path) -> None:
    vsms = on_host(served)
    outside = tmp_path / "elsewhere" / "exports"
    res = vsms("export", source["id"], str(outside))
    assert res.rc == 1 and "does not exist, and vsms creates only directories under a storage " \
        "root" in res.err, res
    assert not (tmp_path / "elsewhere").exists()
    escape = served.root / "escape"
    escape.symlink_to(tmp_path)  # inside by name, outside once resolved
    res = vsms("export", source["id"], str(escape / "x"))
    assert res.rc == 1 and "creates only directories under a storage root" in res.err, res
    assert not (tmp_path / "x").exists()
    name = f"busy-{served.root.name}"
    vsms.ok("vm", "create", name, "--memory", "64")
    try:
        vsms.ok("vm", "start", name)
        target = served.root / "refused" / "exports"
        running = vsms("export", name, str(target))  # refused by the service: 32775
        assert running.rc == 1 and "(32775)" in running.err, running
        assert not (served.root / "refused").exists()  # what the command made is gone again
    finally:
        vsms("vm", "stop", name)
        vsms.ok("vm", "destroy", name)
