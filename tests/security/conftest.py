"""One real Service per test module (qemu:///system), a source VM, its export, and helpers
that check that a refused call left nothing behind.

Module scope keeps the suite fast: the schema, the VM and the export are made once, and every
case works on its own copy of the export.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pywbem

from tests import hyperv
from tests.conftest import QEMU_URI, TEST_ROOT, fresh_dir
from tests.integration.conftest import cleanup
from vsms.app import Service
from vsms.cim import names
from vsms.cim.enums import JobState, ReturnCode
from vsms.client import LocalClient
from vsms.settings import Settings


@dataclass
class Env:
    root: Path  # the only storage root
    outside: Path  # a world-traversable directory outside every storage root
    service: Service
    client: LocalClient
    vm: pywbem.CIMInstanceName
    vm_guid: str
    disk: str  # the source VM's VHD
    export: Path  # a pristine export of the source VM (the per-VM directory)


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    root = fresh_dir(TEST_ROOT)
    outside = fresh_dir(TEST_ROOT / "outside")
    settings = Settings(state_dir=root / "state", storage_roots=(root,), libvirt_uri=QEMU_URI)
    service = Service(settings)
    try:
        client = LocalClient(service.registry)
        (root / "vms").mkdir(mode=0o755)
        disk = str(root / "vms" / "src-disk.vhd")
        hyperv.make_vhd(disk, "64M", data_mb=1)
        vm = hyperv.define_vm(client, f"sec-{root.name}", memory_mb=128)
        hyperv.add_vhd(client, vm, disk)
        hyperv.add_nic(client, vm)
        exports = root / "pristine"
        exports.mkdir(mode=0o755)
        rv, _, job = client.run(names.VSMS, "ExportVirtualSystem", ComputerSystem=vm,
                                CopyVmState=True, ExportDirectory=str(exports))
        assert rv == ReturnCode.JOB_STARTED and job is not None
        assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
        (export,) = [p for p in exports.iterdir() if not p.name.startswith(".")]
        yield Env(root, outside, service, client, vm, str(vm.keybindings["Name"]), disk, export)
    finally:
        cleanup(service, root)
        service.close()
        shutil.rmtree(outside, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        with contextlib.suppress(OSError):  # the shared parent, once no module uses it
            outside.parent.rmdir()


def copy_export(env: Env, name: str) -> Path:
    """A private copy of the pristine export under ``root/cases/<name>`` (no hard links)."""
    cases = env.root / "cases"
    cases.mkdir(mode=0o755, exist_ok=True)
    target = cases / name
    shutil.copytree(env.export, target, symlinks=True)
    return target


def listing(*dirs: Path) -> list[str]:
    """Every path under ``dirs`` (links not followed), with type and size: a snapshot that any
    created, removed or grown file changes."""
    out: list[str] = []
    for d in dirs:
        for dirpath, dirnames, filenames in os.walk(d):
            for n in sorted(dirnames + filenames):
                p = os.path.join(dirpath, n)
                st = os.lstat(p)
                out.append(f"{p} {st.st_mode:o} {st.st_size if not os.path.isdir(p) else 0}")
    return sorted(out)


def our_systems(env: Env) -> list[str]:
    """GUIDs of the VMs that belong to this module's root (libvirt is shared with other tests):
    named after it, or with a disk or an import directory in the root or the outside folder."""
    marks = (str(env.root), str(env.outside))
    return sorted(vs.guid for vs in env.service.host.list_systems()
                  if env.root.name in vs.name
                  or any(m in (vs.imported_from or "") for m in marks)
                  or any(m in media.path for media in vs.media for m in marks))


@dataclass
class Snapshot:
    """What must not change when a call is refused."""

    systems: list[str]
    files: list[str]
    dirs: tuple[Path, ...]

    @classmethod
    def take(cls, env: Env, *extra: Path) -> Snapshot:
        dirs = (env.root, env.outside, *extra)
        files = listing(*dirs)
        return cls(our_systems(env), files, dirs)

    def unchanged(self, env: Env) -> None:
        now = our_systems(env)
        assert now == self.systems, "a virtual machine was registered"
        ignore = (str(env.root / "state"),)  # the job database changes with every call
        before = [f for f in self.files if not f.startswith(ignore)]
        after = [f for f in listing(*self.dirs) if not f.startswith(ignore)]
        assert after == before, sorted(set(after) ^ set(before))


def finished(client: LocalClient, rv: int, out: dict[str, Any]) -> tuple[int, str]:
    """(code, text) of a method call: the ReturnValue, or for a job its ErrorCode and
    ErrorDescription (a job must have ended in Exception)."""
    if rv != ReturnCode.JOB_STARTED:
        return rv, ""
    job = client.wait(out["Job"], timeout=120)
    assert job["JobState"] == JobState.EXCEPTION, (job["JobState"], job["ErrorDescription"])
    return int(job["ErrorCode"]), str(job["ErrorDescription"])


@contextlib.contextmanager
def bind_mount(source: Path, target: Path) -> Iterator[None]:
    """``mount --bind source target`` for the duration (skips the test where not permitted)."""
    target.mkdir(mode=0o755, exist_ok=True)
    r = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True,
                       text=True, timeout=30)
    if r.returncode != 0:
        pytest.skip(f"mount --bind is not permitted here: {r.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30,
                       check=False)


def qcow2(path: Path, *, backing: str = "", data_file: str = "") -> None:
    """A small qcow2 image, optionally over ``backing`` (format raw, recorded as given) or with
    an external data file (qemu-img writes both names into the header without checking them)."""
    args = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if backing:
        args += ["-u", "-b", backing, "-F", "raw"]
    if data_file:
        args += ["-o", f"data_file={data_file}"]
    subprocess.run([*args, str(path), "1M"], check=True, capture_output=True, timeout=30)
