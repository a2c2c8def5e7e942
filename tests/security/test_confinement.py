"""Every path a client sends is confined to the storage roots, through the Python API.

Each case makes a call with a path that escapes (outside, ``..``, a symbolic link, a symlinked
parent, a bind mount, a qcow2 image naming a file outside) and expects the documented code —
32769 Access denied for a path outside the roots, 32773 for a file that is not an image — and
nothing created, changed or registered. Disk images are only ever opened by qemu-img with their
format named (a shim on PATH records every qemu-img command line of a full export and import).
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pywbem

from tests import hyperv
from tests.security.conftest import Env, Snapshot, bind_mount, copy_export, finished, qcow2
from vsms.cim import names
from vsms.cim.embedded import serialize_instance
from vsms.cim.enums import JobState, ReturnCode

pytestmark = pytest.mark.qemu

DENIED = ReturnCode.ACCESS_DENIED
INVALID = ReturnCode.INVALID_PARAMETER


def escapes(env: Env, name: str, outside_target: Path) -> dict[str, Path]:
    """Paths under the root that lead to ``outside_target`` (a directory outside the roots):
    through ``..``, a symbolic link, and a symlinked parent directory."""
    link = env.root / f"{name}-link"
    parent = env.root / f"{name}-parent"
    if not link.is_symlink():
        os.symlink(outside_target, link)
        os.symlink(outside_target.parent, parent)
    dotdot = Path(f"{env.root}/../{os.path.relpath(outside_target, env.root.parent)}")
    return {"outside": outside_target, "dotdot": dotdot, "symlink": link,
            "symlinked parent": parent / outside_target.name}


def outside_export(env: Env) -> Path:
    """A complete, valid export outside the roots (what an attacker points the import at)."""
    target = env.outside / "exp" / env.export.name
    if not target.exists():
        target.parent.mkdir(mode=0o755, exist_ok=True)
        shutil.copytree(env.export, target)
    return target


def call(env: Env, method: str, **params: Any) -> tuple[int, str]:
    if method in ("CreateDynamicVirtualHardDisk", "CreateDifferencingVirtualHardDisk",
                  "GetVirtualHardDiskInfo"):
        rv, out = env.client.invoke(names.IMAGE_SERVICE, method, **params)
    else:
        rv, out = env.client.vsms(method, **params)
    return finished(env.client, rv, out)


# --------------------------------------------------------------------------- ImportDirectory

IMPORTS: dict[str, Callable[[str], dict[str, Any]]] = {
    "ImportVirtualSystem": lambda d: {"ImportDirectory": d, "GenerateNewID": True},
    "ImportVirtualSystemEx": lambda d: {"ImportDirectory": d, "ImportSettingData": _settings()},
    "GetVirtualSystemImportSettingData": lambda d: {"ImportDirectory": d},
}


@pytest.mark.parametrize("method", sorted(IMPORTS))
@pytest.mark.parametrize("how", ["absolute", "outside", "dotdot", "symlink", "symlinked parent"])
def test_import_directory_outside_the_roots(env: Env, method: str, how: str) -> None:
    exp = outside_export(env)
    paths = {"absolute": Path("/etc"), **escapes(env, "imp", exp)}
    snap = Snapshot.take(env)
    code, _ = call(env, method, **IMPORTS[method](str(paths[how])))
    assert code == DENIED
    snap.unchanged(env)
    assert env.service.store.consumed(str(exp)) is None


@pytest.mark.parametrize("method", sorted(IMPORTS))
def test_import_directory_through_a_bind_mount(env: Env, method: str) -> None:
    exp = outside_export(env)
    mnt = env.root / "bind-import"
    with bind_mount(exp.parent, mnt):
        snap = Snapshot.take(env)
        code, _ = call(env, method, **IMPORTS[method](str(mnt / exp.name)))
        assert code == DENIED
        snap.unchanged(env)
    assert env.service.store.consumed(str(mnt / exp.name)) is None


# --------------------------------------------------------------------------- ExportDirectory

@pytest.mark.parametrize("how", ["outside", "dotdot", "symlink", "symlinked parent", "bind"])
def test_export_directory_outside_the_roots(env: Env, how: str) -> None:
    target = env.outside / "export-here"
    target.mkdir(mode=0o755, exist_ok=True)
    if how == "bind":
        mnt = env.root / "bind-export"
        with bind_mount(target, mnt):
            snap = Snapshot.take(env)
            code, _ = call(env, "ExportVirtualSystem", ComputerSystem=env.vm, CopyVmState=True,
                           ExportDirectory=str(mnt))
            snap.unchanged(env)
    else:
        path = escapes(env, "exp", target)[how]
        snap = Snapshot.take(env)
        code, _ = call(env, "ExportVirtualSystem", ComputerSystem=env.vm, CopyVmState=True,
                       ExportDirectory=str(path))
        snap.unchanged(env)
    assert code == DENIED
    assert list(target.iterdir()) == []


# --------------------------------------------------------------------------- Source*/Target*

def _settings(**props: Any) -> str:
    base: dict[str, Any] = {"CreateCopy": True, "GenerateNewId": True}
    return serialize_instance(pywbem.CIMInstance(names.IMPORT_SD, properties={**base, **props}))


@pytest.mark.parametrize("prop", ["TargetVhdDataRoot", "TargetVmDataRoot", "SourceVhdDataRoot",
                                  "TargetResourcePaths", "SourceResourcePaths"])
@pytest.mark.parametrize("how", ["outside", "dotdot", "symlink", "symlinked parent"])
def test_import_settings_paths_outside_the_roots(env: Env, prop: str, how: str) -> None:
    disks = env.outside / "disks"
    disks.mkdir(mode=0o755, exist_ok=True)
    shutil.copyfile(env.disk, disks / "src-disk.vhd")
    base = escapes(env, "set", disks)[how]
    value: Any = str(base)
    if prop.endswith("Paths"):
        value = [str(base / ("copy.vhd" if prop.startswith("Target") else "src-disk.vhd"))]
    exp = copy_export(env, f"settings-{prop}-{how.replace(' ', '-')}")
    snap = Snapshot.take(env)
    code, _ = call(env, "ImportVirtualSystemEx", ImportDirectory=str(exp),
                   ImportSettingData=_settings(**{prop: value}))
    assert code == DENIED
    snap.unchanged(env)
    assert env.service.store.consumed(str(exp)) is None


# --------------------------------------------------------------------------- image service

@pytest.fixture(scope="module")
def outside_disk(env: Env) -> Path:
    folder = env.outside / "images"
    folder.mkdir(mode=0o755, exist_ok=True)
    disk = folder / "secret.vhd"
    if not disk.exists():
        hyperv.make_vhd(str(disk), "8M")
    (folder / "secret.raw").write_bytes(b"host secret\n" * 100)
    return disk


@pytest.fixture(scope="module")
def hostile_images(env: Env, outside_disk: Path) -> dict[str, Path]:
    """qcow2 images inside the root that name files outside it, or loop."""
    d = env.root / "hostile"
    d.mkdir(mode=0o755, exist_ok=True)
    secret = outside_disk.parent / "secret.raw"
    images = {
        "absolute backing file": (d / "abs.qcow2", {"backing": str(secret)}),
        "relative backing file": (d / "rel.qcow2",
                                  {"backing": os.path.relpath(secret, d)}),
        "backing through a symlink": (d / "vialink.qcow2", {"backing": "secret-link"}),
        "json: backing": (d / "json.qcow2", {"backing": 'json:{"driver":"raw","file":'
                                                        f'{{"driver":"file","filename":"{secret}"}}}}'}),
        "protocol backing": (d / "nbd.qcow2", {"backing": "nbd:127.0.0.1:10809"}),
        "external data file": (d / "data.qcow2",
                               {"data_file": str(outside_disk.parent / "data.raw")}),
        "second level backing": (d / "chain.qcow2", {"backing": "abs.qcow2"}),
    }
    if not (d / "secret-link").is_symlink():
        os.symlink(secret, d / "secret-link")
    for path, opts in images.values():
        if not path.exists():
            qcow2(path, **opts)
    return {k: p for k, (p, _) in images.items()}


HOSTILE = ["absolute backing file", "relative backing file", "backing through a symlink",
           "json: backing", "protocol backing", "external data file", "second level backing"]


@pytest.mark.parametrize("kind", HOSTILE)
def test_disk_info_of_a_qcow2_naming_a_file_outside(env: Env, hostile_images: dict[str, Path],
                                                    kind: str) -> None:
    snap = Snapshot.take(env)
    code, _ = call(env, "GetVirtualHardDiskInfo", Path=str(hostile_images[kind]))
    assert code == DENIED
    snap.unchanged(env)


@pytest.mark.parametrize("kind", HOSTILE)
def test_differencing_disk_over_a_hostile_parent(env: Env, hostile_images: dict[str, Path],
                                                 kind: str) -> None:
    child = env.root / "hostile" / f"child-{HOSTILE.index(kind)}.qcow2"
    snap = Snapshot.take(env)
    code, _ = call(env, "CreateDifferencingVirtualHardDisk", Path=str(child),
                   ParentPath=str(hostile_images[kind]))
    assert code == DENIED
    snap.unchanged(env)


def test_backing_chain_that_loops(env: Env) -> None:
    d = env.root / "loop"
    d.mkdir(mode=0o755, exist_ok=True)
    qcow2(d / "a.qcow2", backing="b.qcow2")
    qcow2(d / "b.qcow2", backing="a.qcow2")
    snap = Snapshot.take(env)
    code, _ = call(env, "GetVirtualHardDiskInfo", Path=str(d / "a.qcow2"))
    assert code == INVALID
    snap.unchanged(env)


@pytest.mark.parametrize("method", ["CreateDynamicVirtualHardDisk", "GetVirtualHardDiskInfo",
                                    "CreateDifferencingVirtualHardDisk"])
@pytest.mark.parametrize("how", ["outside", "dotdot", "symlink", "symlinked parent", "bind"])
def test_image_service_paths_outside_the_roots(env: Env, outside_disk: Path, method: str,
                                               how: str) -> None:
    folder = outside_disk.parent
    name = {"CreateDynamicVirtualHardDisk": "new.vhd", "GetVirtualHardDiskInfo": "secret.vhd",
            "CreateDifferencingVirtualHardDisk": "secret.vhd"}[method]

    def run(base: Path) -> int:
        params: dict[str, Any] = {"Path": str(base / name)}
        if method == "CreateDynamicVirtualHardDisk":
            params["MaxInternalSize"] = pywbem.Uint64(1 << 20)
        if method == "CreateDifferencingVirtualHardDisk":  # the parent is what escapes
            params = {"Path": str(env.root / "hostile" / "diff.qcow2"),
                      "ParentPath": str(base / name)}
        snap = Snapshot.take(env)
        code, _ = call(env, method, **params)
        snap.unchanged(env)
        return code

    if how == "bind":
        with bind_mount(folder, env.root / "bind-images"):
            code = run(env.root / "bind-images")
    else:
        code = run(escapes(env, "img", folder)[how])
    assert code == DENIED
    assert not (folder / "new.vhd").exists()


# --------------------------------------------------------------------------- RASD image paths

@pytest.fixture(scope="module")
def spare_drive(env: Env) -> pywbem.CIMInstanceName:
    ctrl = hyperv.ide_controller(env.client, env.vm, 0)
    drive = pywbem.CIMInstance(names.RASD, properties={
        "ResourceType": pywbem.Uint16(22), "ResourceSubType": "Microsoft Synthetic Disk Drive",
        "Parent": ctrl.path.to_wbem_uri() if ctrl.path is not None else "", "Address": "1"})
    return hyperv.add_resource(env.client, env.vm, drive)


def attach(env: Env, drive: pywbem.CIMInstanceName, path: str) -> int:
    image = pywbem.CIMInstance(names.RASD, properties={
        "ResourceType": pywbem.Uint16(21), "ResourceSubType": "Microsoft Virtual Hard Disk",
        "Parent": drive.to_wbem_uri(), "Connection": [path]})
    before = len(hyperv.rasds(env.client, env.vm))
    snap = Snapshot.take(env)
    code, _ = call(env, "AddVirtualSystemResources", TargetSystem=env.vm,
                   ResourceSettingData=[serialize_instance(image)])
    snap.unchanged(env)
    assert len(hyperv.rasds(env.client, env.vm)) == before
    return code


@pytest.mark.parametrize("how", ["outside", "dotdot", "symlink", "symlinked parent", "bind"])
def test_attached_image_outside_the_roots(env: Env, outside_disk: Path,
                                          spare_drive: pywbem.CIMInstanceName, how: str) -> None:
    folder = outside_disk.parent
    if how == "bind":
        with bind_mount(folder, env.root / "bind-attach"):
            code = attach(env, spare_drive, str(env.root / "bind-attach" / outside_disk.name))
    else:
        code = attach(env, spare_drive, str(escapes(env, "att", folder)[how] / outside_disk.name))
    assert code == DENIED


@pytest.mark.parametrize("kind", HOSTILE)
def test_attached_qcow2_naming_a_file_outside(env: Env, hostile_images: dict[str, Path],
                                              spare_drive: pywbem.CIMInstanceName,
                                              kind: str) -> None:
    assert attach(env, spare_drive, str(hostile_images[kind])) == DENIED


@pytest.mark.parametrize("kind", ["fifo", "socket", "device", "directory"])
def test_attached_special_files_are_not_images(env: Env, spare_drive: pywbem.CIMInstanceName,
                                               kind: str) -> None:
    d = env.root / "special"
    d.mkdir(mode=0o755, exist_ok=True)
    path = d / kind
    if not os.path.lexists(path):
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "device":
            os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # like /dev/null
        elif kind == "directory":
            path.mkdir()
        else:
            import socket

            with socket.socket(socket.AF_UNIX) as s:
                s.bind(str(path))
    assert attach(env, spare_drive, str(path)) == INVALID


# --------------------------------------------------------------------------- qemu-img -f

SHIM = """#!{python}
import os, sys
with open({log!r}, "a") as fh:
    fh.write("\\0".join(sys.argv[1:]) + "\\n")
os.execv({real!r}, [{real!r}, *sys.argv[1:]])
"""


def test_qemu_img_is_always_told_the_format(env: Env, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Every qemu-img command of an export, an import with copy (VHD -> qcow2 conversion) and
    the image service names the format of every image it opens (-f, and -F/-O where needed)."""
    real = shutil.which("qemu-img")
    assert real is not None
    log = tmp_path / "calls.log"
    shim_dir = tmp_path / "bin"
    shim_dir.mkdir()
    (shim_dir / "qemu-img").write_text(SHIM.format(python=sys.executable, log=str(log),
                                                   real=real))
    (shim_dir / "qemu-img").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim_dir}:{os.environ['PATH']}")

    exp = copy_export(env, "qemu-img-f")
    target = env.root / "converted"
    target.mkdir(mode=0o755, exist_ok=True)
    rv, out, job = env.client.run(names.VSMS, "ExportVirtualSystem", ComputerSystem=env.vm,
                                  CopyVmState=True, ExportDirectory=str(target))
    assert job is not None
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    rv, out, job = env.client.run(names.VSMS, "ImportVirtualSystemEx", ImportDirectory=str(exp),
                                  ImportSettingData=_settings(TargetResourcePaths=[
                                      str(target / "disk.qcow2")]))
    assert job is not None
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    imported = str(env.client.affected_vm(job)["Name"])
    try:
        for method, params in [
            ("CreateDynamicVirtualHardDisk", {"Path": str(target / "new.vhdx"),
                                              "MaxInternalSize": pywbem.Uint64(1 << 20)}),
            ("CreateDifferencingVirtualHardDisk", {"Path": str(target / "child.qcow2"),
                                                   "ParentPath": str(target / "disk.qcow2")}),
            ("GetVirtualHardDiskInfo", {"Path": str(target / "child.qcow2")}),
        ]:
            rv, out, done = env.client.run(names.IMAGE_SERVICE, method, **params)
            assert rv in (ReturnCode.COMPLETED, ReturnCode.JOB_STARTED), (method, rv)
            assert done is None or done["JobState"] == JobState.COMPLETED, done["ErrorDescription"]
    finally:
        env.service.host.undefine(imported)
    calls = [line.split("\0") for line in log.read_text().splitlines()]
    verbs = {c[0] for c in calls}
    assert {"convert", "create", "check", "info"} <= verbs, verbs
    for c in calls:
        assert "-f" in c, c
        if c[0] == "convert":
            assert "-O" in c, c
        if "-b" in c:
            assert "-F" in c, c


# --------------------------------------------------------------------------- known gaps

def test_default_copy_target_behind_a_symlink(env: Env) -> None:
    vmdir = env.root / "Virtual Machines"
    trap = env.outside / "vm-trap"
    trap.mkdir(mode=0o755, exist_ok=True)
    made = not os.path.lexists(vmdir)
    if made:
        os.symlink(trap, vmdir)
    exp = copy_export(env, "default-target")
    before = {vs.guid for vs in env.service.host.list_systems()}
    try:
        code, _ = call(env, "ImportVirtualSystemEx", ImportDirectory=str(exp),
                       ImportSettingData=_settings())
        assert code == DENIED
    finally:
        for vs in env.service.host.list_systems():
            if vs.guid not in before:
                env.service.host.undefine(vs.guid)
        if made:
            os.unlink(vmdir)
        shutil.rmtree(trap, ignore_errors=True)
