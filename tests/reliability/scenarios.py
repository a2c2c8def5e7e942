"""The operations the kill-point test interrupts, each as an unarmed set-up and an armed run.

The child process (``killchild.py``) runs ``setup`` with no kill point installed, records the
storage listing, installs the kill points and runs ``run``; ``run`` asserts the operation's
normal outcome, so a complete (never killed) run proves the scenario itself works.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pywbem

from tests import hyperv
from vsms.app import Service
from vsms.cim import names
from vsms.cim.embedded import serialize_instance
from vsms.cim.enums import JobState, ReturnCode
from vsms.client import LocalClient
from vsms.disks import copy as diskcopy
from vsms.mapping.ids import instance_id_from_ref


@dataclass
class Bench:
    """What a scenario works with: a service, a client, its storage root and a name prefix
    that marks every VM it creates (so checks and clean-up touch only these)."""

    service: Service
    client: LocalClient
    root: Path
    prefix: str
    facts: dict[str, Any] = field(default_factory=dict)


def listing(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (relative path -> 'd' directory, 'f' file, 'o' other)."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), root)] = "d"
        for name in filenames:
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, root)] = "f" if os.path.isfile(full) else "o"
    return out


def mkdir(path: Path) -> Path:
    path.mkdir(mode=0o755)
    os.chmod(path, 0o755)
    return path


def ok_job(bench: Bench, rv: int, out: dict[str, Any],
           state: JobState = JobState.COMPLETED) -> pywbem.CIMInstance:
    """Wait for the job a method started and check it ended in ``state``."""
    assert rv == ReturnCode.JOB_STARTED, (rv, out)
    job = bench.client.wait(out["Job"], timeout=120)
    assert job["JobState"] == state, (job["JobState"], job["ErrorDescription"])
    return job


# -- set-up steps (run unarmed) -------------------------------------------------------------

def make_disk(bench: Bench) -> None:
    disk = mkdir(bench.root / "vms") / "disk.vhd"
    data_mb = int(os.environ.get("VSMS_KILLPOINTS_DATA_MB", "2"))
    hyperv.make_vhd(str(disk), f"{max(32, 2 * data_mb)}M", data_mb=data_mb)
    bench.facts["disk"] = str(disk)


def make_vm(bench: Bench) -> None:
    make_disk(bench)
    vm = hyperv.define_vm(bench.client, f"{bench.prefix}src")
    hyperv.add_vhd(bench.client, vm, bench.facts["disk"])
    bench.facts["vm"] = str(vm.keybindings["Name"])


def make_vm_and_target(bench: Bench) -> None:
    make_vm(bench)
    bench.facts["target"] = str(mkdir(bench.root / "out"))


def make_export(bench: Bench) -> None:
    make_vm(bench)
    root = mkdir(bench.root / "exp")
    ok_job(bench, *bench.client.vsms("ExportVirtualSystem", ComputerSystem=vm_path(bench),
                                     CopyVmState=True, ExportDirectory=str(root)))
    bench.facts["export"] = str(root / f"{bench.prefix}src")


def make_export_and_target(bench: Bench) -> None:
    make_export(bench)
    bench.facts["target"] = str(mkdir(bench.root / "converted"))


def vm_path(bench: Bench) -> pywbem.CIMInstanceName:
    return pywbem.CIMInstanceName(names.COMPUTER_SYSTEM, keybindings={
        "CreationClassName": names.COMPUTER_SYSTEM, "Name": bench.facts["vm"]},
        namespace=names.NAMESPACE)


# -- the interrupted operations (run armed) --------------------------------------------------

def run_define(bench: Bench) -> None:
    vm = hyperv.define_vm(bench.client, f"{bench.prefix}new", memory_mb=64, processors=2)
    hyperv.add_vhd(bench.client, vm, bench.facts["disk"])
    hyperv.add_nic(bench.client, vm)


def run_export(bench: Bench) -> None:
    ok_job(bench, *bench.client.vsms("ExportVirtualSystem", ComputerSystem=vm_path(bench),
                                     CopyVmState=True, ExportDirectory=bench.facts["target"]))


def run_export_ex_in_directory(bench: Bench) -> None:
    """ExportVirtualSystemEx without a per-VM subdirectory: the entries are moved into the
    ExportDirectory one by one, the manifest last."""
    esd = pywbem.CIMInstance(names.EXPORT_SD, properties={
        "CopyVmStorage": True, "CopyVmRuntimeInformation": False,
        "CreateVmExportSubdirectory": False, "CopySnapshotConfiguration": pywbem.Uint8(0)})
    ok_job(bench, *bench.client.vsms("ExportVirtualSystemEx", ComputerSystem=vm_path(bench),
                                     ExportDirectory=bench.facts["target"],
                                     ExportSettingData=serialize_instance(esd)))


def run_destroy(bench: Bench) -> None:
    ok_job(bench, *bench.client.vsms("DestroyVirtualSystem", ComputerSystem=vm_path(bench)))


def run_import_in_place(bench: Bench) -> None:
    ok_job(bench, *bench.client.vsms("ImportVirtualSystem",
                                     ImportDirectory=bench.facts["export"],
                                     GenerateNewID=True))


def _import_copy(bench: Bench, state: JobState, target: str = "") -> None:
    rv, out = bench.client.vsms("GetVirtualSystemImportSettingData",
                                ImportDirectory=bench.facts["export"])
    assert rv == ReturnCode.COMPLETED, rv
    isd: pywbem.CIMInstance = out["ImportSettingData"]
    isd["CreateCopy"] = True
    isd["GenerateNewId"] = True
    isd["Name"] = f"{bench.prefix}copy"
    if target:
        isd["TargetResourcePaths"] = [target]
    ok_job(bench, *bench.client.vsms("ImportVirtualSystemEx",
                                     ImportDirectory=bench.facts["export"],
                                     ImportSettingData=serialize_instance(isd)), state)


def run_import_copy(bench: Bench) -> None:
    _import_copy(bench, JobState.COMPLETED)


def run_import_convert(bench: Bench) -> None:
    """A copy import whose target is qcow2: the disk is converted by a qemu-img child."""
    _import_copy(bench, JobState.COMPLETED, str(Path(bench.facts["target"]) / "disk.qcow2"))


def cancel_running_jobs(client: LocalClient) -> None:
    """Terminate (RequestStateChange 4) every running job, as a client would."""
    for job in client.registry.enumerate_instances(client.namespace, names.CONCRETE_JOB):
        if job["JobState"] == JobState.RUNNING and job.path is not None:
            rv, _ = client.invoke(job.path, "RequestStateChange",
                                  RequestedState=pywbem.Uint16(4))
            assert rv == ReturnCode.JOB_STARTED, (instance_id_from_ref(job.path), rv)


def cancel_during_copy(bench: Bench) -> None:
    """From now on, the first progress report of a disk copy cancels the running jobs."""
    for name in ("copy_file", "copy_and_hash"):
        inner: Callable[..., Any] = getattr(diskcopy, name)
        setattr(diskcopy, name, _cancelling(bench, inner))


def _cancelling(bench: Bench, inner: Callable[..., Any]) -> Callable[..., Any]:
    def copy(src: str, dst: str, *, progress: Any = None, cancel: Any = None,
             **more: Any) -> Any:
        fired: list[bool] = []

        def report(done: int) -> None:
            if done > 0 and not fired:
                fired.append(True)
                cancel_running_jobs(bench.client)
            if progress is not None:
                progress(done)
        return inner(src, dst, progress=report, cancel=cancel, **more)

    return copy


def run_cancel_export(bench: Bench) -> None:
    cancel_during_copy(bench)
    ok_job(bench, *bench.client.vsms("ExportVirtualSystem", ComputerSystem=vm_path(bench),
                                     CopyVmState=True, ExportDirectory=bench.facts["target"]),
           JobState.TERMINATED)


def run_cancel_import(bench: Bench) -> None:
    cancel_during_copy(bench)
    _import_copy(bench, JobState.TERMINATED)


# -- snapshots (issue 13) --------------------------------------------------------------------

def _snapshot(bench: Bench) -> str:
    rv, out = bench.client.vsms("CreateVirtualSystemSnapshot", SourceSystem=vm_path(bench))
    ok_job(bench, rv, out)
    return str(out["SnapshotSettingData"]["InstanceID"])


def _settings(instance_id: str) -> pywbem.CIMInstanceName:
    return pywbem.CIMInstanceName(names.VSSD, keybindings={"InstanceID": instance_id},
                                  namespace=names.NAMESPACE)


def make_vm_with_snapshots(bench: Bench) -> None:
    """A VM with two snapshots: S1 (the VHD), S2 (an overlay on it) and a current overlay."""
    make_vm(bench)
    bench.facts["s1"] = _snapshot(bench)
    bench.facts["s2"] = _snapshot(bench)


def run_snapshots(bench: Bench) -> None:
    """Create S3 (new overlays), apply S1 (the current overlay discarded), remove S1 (S2's
    overlay merged into the VHD, the current overlay re-parented): one scenario, so the
    kill points spread over all three (``VSMS_KILLPOINTS=all`` tries each)."""
    _snapshot(bench)
    ok_job(bench, *bench.client.vsms("ApplyVirtualSystemSnapshotEx",
                                     ComputerSystem=vm_path(bench),
                                     SnapshotSettingData=_settings(bench.facts["s1"])))
    ok_job(bench, *bench.client.vsms("RemoveVirtualSystemSnapshot",
                                     SnapshotSettingData=_settings(bench.facts["s1"])))


def make_tree_and_target(bench: Bench) -> None:
    make_vm_with_snapshots(bench)
    bench.facts["target"] = str(mkdir(bench.root / "out"))


def run_snapshot_tree(bench: Bench) -> None:
    """Export a VM with snapshots (v1: the whole tree; every image copied, the overlays'
    copies rebased onto their parents' copies, each snapshot's settings written), then import
    that export as a copy (every image copied, the chains rebased onto the copies, the tree
    rebuilt): the snapshot parts of export and import in one scenario (issue 13)."""
    run_export(bench)
    bench.facts["export"] = str(Path(bench.facts["target"]) / f"{bench.prefix}src")
    run_import_copy(bench)


Step = Callable[[Bench], None]

SCENARIOS: dict[str, tuple[Step, Step]] = {
    "define": (make_disk, run_define),
    "export": (make_vm_and_target, run_export),
    "import-in-place": (make_export, run_import_in_place),
    "import-copy": (make_export, run_import_copy),
    "import-convert": (make_export_and_target, run_import_convert),
    "export-ex-in-directory": (make_vm_and_target, run_export_ex_in_directory),
    "destroy": (make_vm, run_destroy),
    "cancel-export": (make_vm_and_target, run_cancel_export),
    "cancel-import": (make_export, run_cancel_import),
    "snapshots": (make_vm_with_snapshots, run_snapshots),
    "snapshot-tree": (make_tree_and_target, run_snapshot_tree),
}
"""name -> (set-up, interrupted run)."""
