"""Shared helpers of the vsms benchmarks: a throw-away service, disks, VMs, timing, reports.

A ``Rig`` is a real ``vsms.app.Service`` on libvirt with its own storage root (a fresh,
world-traversable directory, so QEMU could open the disks) and its own state directory; leaving
the ``with`` block undefines every VM the rig made or imported and removes the directory.
Nothing here is imported by vsms itself; the scripts next to this file put it on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import pywbem

from vsms.app import Service
from vsms.cim import names
from vsms.cim.embedded import serialize_instance
from vsms.cim.enums import JobState, ReturnCode
from vsms.client import LocalClient
from vsms.model.job import JobRecord
from vsms.settings import Settings

MIB = 1024 * 1024
GIB = 1024 * MIB
JOB_TIMEOUT = 3600.0


class BenchError(RuntimeError):
    """A benchmark step did not do what it should (the figures would be meaningless)."""


def stop_on_sigterm() -> None:
    """Make SIGTERM raise KeyboardInterrupt, so the cleanup of a killed benchmark still runs."""
    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, handler)


# -- files -------------------------------------------------------------------------------------

def run(cmd: list[str], timeout: float = 600.0) -> str:
    """Run a command, raise BenchError with its stderr when it fails; return its stdout."""
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def make_vhd(path: Path, size: int, data: int, extents: int = 16) -> None:
    """A dynamic VHD of ``size`` bytes holding ``data`` bytes written by qemu-io in
    ``extents`` runs spread evenly over the disk (a different byte pattern in each run)."""
    run(["qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=dynamic,force_size=on",
         str(path), str(size)], timeout=60)
    if data <= 0:
        return
    mib = max(1, data // MIB)
    extents = max(1, min(extents, mib))
    run_mib, stride = mib // extents, (size // MIB) // extents
    if run_mib > stride:
        raise BenchError(f"{data} bytes of data do not fit a disk of {size} bytes")
    cmds: list[str] = []
    for i in range(extents):
        cmds += ["-c", f"write -P {i % 255 + 1} {i * stride}M {run_mib}M"]
    run(["qemu-io", "-f", "vpc", *cmds, str(path)], timeout=1800)


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


def cp_reference(src: Path, dst: Path, *options: str) -> float:
    """Seconds for ``cp <options> src dst`` followed by fsync of dst (after a ``sync``)."""
    sync()
    start = time.monotonic()
    run(["cp", *(options or ("--sparse=always",)), str(src), str(dst)], timeout=3600)
    fsync_path(dst)
    return time.monotonic() - start


def sync() -> None:
    run(["sync"], timeout=600)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of ``fn()``, after a ``sync`` so earlier writes are not charged."""
    sync()
    start = time.monotonic()
    result = fn()
    return time.monotonic() - start, result


def world_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o755)
    return path


# -- reports -------------------------------------------------------------------------------------

def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def row(label: str, values: list[float], unit: str = "s") -> str:
    shown = " ".join(f"{v:.3f}" for v in values)
    return f"  {label:<42} median {median(values):8.3f} {unit}   [{shown}]"


def ratio_row(label: str, ours: list[float], ref: list[float], limit: float | None) -> str:
    """Median of the per-repetition ratios (each pair measured back to back)."""
    ratios = [a / b for a, b in zip(ours, ref, strict=True) if b > 0]
    verdict = ""
    if limit is not None:
        verdict = "  OK" if median(ratios) <= limit else f"  ABOVE {limit:g}x"
    shown = " ".join(f"{r:.2f}" for r in ratios)
    return f"  {label:<42} median {median(ratios):8.2f} x   [{shown}]{verdict}"


# -- the service ---------------------------------------------------------------------------------

class Rig:
    """A Service on ``uri`` with a fresh storage root under ``parent`` (see module docstring)."""

    def __init__(self, parent: Path, uri: str, *, root: Path | None = None) -> None:
        self.token = uuid.uuid4().hex[:10]
        world_dir(parent)
        self.root = world_dir(root) if root is not None else Path(
            tempfile.mkdtemp(prefix=f"vsms-bench-{self.token}-", dir=parent))
        os.chmod(self.root, 0o755)
        self.settings = Settings(state_dir=self.root / "state", storage_roots=(self.root,),
                                 libvirt_uri=uri)
        self.uri = uri
        self.service: Service | None = None
        self.guids: set[str] = set()
        self._own_root = root is None

    def __enter__(self) -> Rig:
        try:
            self.service = Service(self.settings)
        except BaseException:  # e.g. libvirtd not running: leave no storage root behind
            self.close()
            raise
        print(f"rig: storage root {self.root}, token {self.token}", flush=True)
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def svc(self) -> Service:
        if self.service is None:
            raise BenchError("the rig's service is not running")
        return self.service

    @property
    def client(self) -> LocalClient:
        return LocalClient(self.svc.registry)

    def restart(self) -> float:
        """Close the service and build a new one on the same state; seconds the new one took."""
        self.svc.close()
        self.service = None
        start = time.monotonic()
        self.service = Service(self.settings)
        return time.monotonic() - start

    def forget(self, guid: str) -> None:
        """Undefine one VM through libvirt (its disks stay)."""
        self.svc.host.undefine(guid)
        self.guids.discard(guid)

    def close(self) -> None:
        try:
            if self.service is not None:
                for vs in self.service.host.list_systems():
                    if vs.guid in self.guids or self.token in vs.name or str(self.root) in (
                            vs.imported_from or ""):
                        with contextlib.suppress(Exception):
                            self.service.host.undefine(vs.guid)
                self.service.close()
                self.service = None
        finally:
            if self._own_root:
                shutil.rmtree(self.root, ignore_errors=True)

    # -- calls ---------------------------------------------------------------------------------

    def job(self, method: str, **params: Any) -> tuple[float, JobRecord]:
        """Invoke a job-starting method of the management service and wait for its end:
        (seconds from the call to the end of the job, the finished record)."""
        start = time.monotonic()
        rv, out = self.client.vsms(method, **params)
        if rv != ReturnCode.JOB_STARTED:
            raise BenchError(f"{method} returned {rv}, not 4096")
        job_id = str(out["Job"].keybindings["InstanceID"])
        rec = self.svc.jobs.wait(job_id, JOB_TIMEOUT)
        elapsed = time.monotonic() - start
        if rec.state is not JobState.COMPLETED:
            raise BenchError(f"{method} ended {rec.state.name}: {rec.error_description}")
        for element in rec.affected:
            if element.classname == names.COMPUTER_SYSTEM:
                self.guids.add(str(element.keys["Name"]).upper())
        return elapsed, rec

    def define_vm(self, name: str, disks: list[Path] | None = None) -> str:
        """Define a VM through the service, each disk on its own IDE slot; its GUID."""
        gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": name})
        rv, out = self.client.vsms("DefineVirtualSystem", SystemSettingData=_text(gsd),
                                   ResourceSettingData=[])
        if rv != ReturnCode.COMPLETED:
            raise BenchError(f"DefineVirtualSystem of {name} returned {rv}")
        vm: pywbem.CIMInstanceName = out["DefinedSystem"]
        guid = str(vm.keybindings["Name"]).upper()
        self.guids.add(guid)
        for i, disk in enumerate(disks or []):
            self._add_disk(vm, disk, controller=i // 2, slot=i % 2)
        return guid

    def add_nic(self, guid: str) -> None:
        """A synthetic network adapter, not connected."""
        nic = pywbem.CIMInstance(names.SYNTHETIC_NIC_SD, properties={
            "ResourceType": pywbem.Uint16(10),
            "ResourceSubType": "Microsoft Synthetic Ethernet Port",
            "ElementName": "Network Adapter"})
        self._add(_vm_path(guid), nic)

    def _add_disk(self, vm: pywbem.CIMInstanceName, disk: Path, controller: int,
                  slot: int) -> None:
        client = self.client
        vssd = client.registry.associators(client.namespace, vm,
                                           assoc_class=names.SETTINGS_DEFINE_STATE,
                                           result_class=names.VSSD)[0]
        ctrl = next(r for r in client.registry.associators(
                        client.namespace, vssd.path, assoc_class=names.VSSD_COMPONENT,
                        result_class=names.RASD)
                    if r["ResourceType"] == 5 and str(r["Address"]) == str(controller))
        drive = pywbem.CIMInstance(names.RASD, properties={
            "ResourceType": pywbem.Uint16(22),
            "ResourceSubType": "Microsoft Synthetic Disk Drive",
            "Parent": ctrl.path.to_wbem_uri(), "Address": str(slot)})
        drive_path = self._add(vm, drive)
        image = pywbem.CIMInstance(names.RASD, properties={
            "ResourceType": pywbem.Uint16(21),
            "ResourceSubType": "Microsoft Virtual Hard Disk",
            "Parent": drive_path.to_wbem_uri(), "Connection": [str(disk)]})
        self._add(vm, image)

    def _add(self, vm: pywbem.CIMInstanceName, rasd: pywbem.CIMInstance) -> Any:
        rv, out = self.client.vsms("AddVirtualSystemResources", TargetSystem=vm,
                                   ResourceSettingData=[_text(rasd)])
        if rv != ReturnCode.COMPLETED:
            raise BenchError(f"AddVirtualSystemResources returned {rv}")
        return out["NewResources"][0]

    def export(self, guid: str, directory: Path) -> tuple[float, Path]:
        """ExportVirtualSystem with storage into ``directory``: (seconds, the per-VM folder)."""
        vm = _vm_path(guid)
        vs = self.svc.host.get_system(guid)
        if vs is None:
            raise BenchError(f"VM {guid} is gone")
        elapsed, _ = self.job("ExportVirtualSystem", ComputerSystem=vm, CopyVmState=True,
                              ExportDirectory=str(directory))
        return elapsed, directory / vs.name

    def import_copy(self, directory: Path, targets: list[Path], name: str) -> tuple[float, str]:
        """ImportVirtualSystemEx with CreateCopy, a new ID and the disks at ``targets``."""
        rv, out = self.client.vsms("GetVirtualSystemImportSettingData",
                                   ImportDirectory=str(directory))
        if rv != ReturnCode.COMPLETED:
            raise BenchError(f"GetVirtualSystemImportSettingData returned {rv}")
        isd: pywbem.CIMInstance = out["ImportSettingData"]
        isd["CreateCopy"] = True
        isd["GenerateNewId"] = True
        isd["Name"] = name
        isd["TargetResourcePaths"] = [str(t) for t in targets]
        elapsed, rec = self.job("ImportVirtualSystemEx", ImportDirectory=str(directory),
                                ImportSettingData=_text(isd))
        return elapsed, _vm_of(rec)

    def import_in_place(self, directory: Path) -> tuple[float, str]:
        elapsed, rec = self.job("ImportVirtualSystem", ImportDirectory=str(directory),
                                GenerateNewID=True)
        return elapsed, _vm_of(rec)


def _text(inst: pywbem.CIMInstance) -> str:
    return serialize_instance(inst)


def _vm_path(guid: str) -> pywbem.CIMInstanceName:
    return pywbem.CIMInstanceName(
        names.COMPUTER_SYSTEM,
        keybindings={"CreationClassName": names.COMPUTER_SYSTEM, "Name": guid},
        namespace=names.NAMESPACE)


def _vm_of(rec: JobRecord) -> str:
    for element in rec.affected:
        if element.classname == names.COMPUTER_SYSTEM:
            return str(element.keys["Name"]).upper()
    raise BenchError(f"job {rec.instance_id} names no virtual machine")


@contextlib.contextmanager
def scratch(parent: Path, tag: str) -> Iterator[Path]:
    """A world-traversable temporary directory under ``parent``, removed afterwards."""
    world_dir(parent)
    path = Path(tempfile.mkdtemp(prefix=f"vsms-bench-{tag}-", dir=parent))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def machine() -> str:
    """One line describing this machine (CPU count, kernel, memory)."""
    mem = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    load = os.getloadavg()
    return (f"{os.cpu_count()} CPUs, {os.uname().release}, {mem / GIB:.0f} GiB RAM, "
            f"load {load[0]:.2f}, {time.strftime('%Y-%m-%d %H:%M')}")
