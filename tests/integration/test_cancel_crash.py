"""Cancel an export and an import mid-copy, and SIGKILL the service mid-import: nothing is
left half-done, and the interrupted job is reported after the restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pywbem

from tests import hyperv
from tests.integration.conftest import SourceVM, cleanup, export_dir
from tests.integration.test_export_import import export
from vsms.app import Service
from vsms.cim import names
from vsms.cim.embedded import serialize_instance
from vsms.cim.enums import EnabledState, JobState, ReturnCode
from vsms.client import LocalClient
from vsms.settings import Settings

pytestmark = pytest.mark.qemu

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def big_vm(client: LocalClient, storage_root: Path) -> SourceVM:
    """A VM whose VHD holds 1 GiB of data, so that copies take a measurable time."""
    vms = storage_root / "vms"
    vms.mkdir(mode=0o755)
    disk = str(vms / "big.vhd")
    hyperv.make_vhd(disk, "4G", data_mb=1024)
    name = f"big-{storage_root.name}"
    vm = hyperv.define_vm(client, name)
    hyperv.add_vhd(client, vm, disk)
    return SourceVM(vm, name, str(vm.keybindings["Name"]), disk)


def ours(service: Service, root: Path) -> set[str]:
    """GUIDs of the VMs of this test (other tests may define VMs on the same libvirt)."""
    return {vs.guid for vs in service.host.list_systems()
            if root.name in vs.name or any(str(root) in m.path for m in vs.media)
            or str(root) in vs.imported_from}


def cancel_when_copying(client: LocalClient, job_path: pywbem.CIMInstanceName,
                        copying: Path) -> pywbem.CIMInstance:
    deadline = time.monotonic() + 120
    while not copying.exists() or not any(p.is_file() and p.stat().st_blocks
                                          for p in [copying, *copying.rglob("*")]):
        assert time.monotonic() < deadline, "the copy never started"
        time.sleep(0.002)
    rv, _ = client.invoke(job_path, "RequestStateChange", RequestedState=pywbem.Uint16(4))
    assert rv == 4096
    job = client.wait(job_path)
    assert job["JobState"] == JobState.TERMINATED, job["ErrorDescription"]
    assert "cancel" in job["ErrorDescription"].lower()
    return job


def test_cancel_export_mid_copy(client: LocalClient, big_vm: SourceVM, storage_root: Path) -> None:
    target = export_dir(storage_root, "exp")
    rv, out = client.vsms("ExportVirtualSystem", ComputerSystem=big_vm.path, CopyVmState=True,
                          ExportDirectory=str(target))
    assert rv == ReturnCode.JOB_STARTED
    cancel_when_copying(client, out["Job"], target)
    assert list(target.iterdir()) == []
    # the VM is untouched and usable: no transition is left behind
    assert hyperv.vm_state(client, big_vm.path) == EnabledState.DISABLED
    export(client, big_vm, target)


def test_cancel_import_mid_copy(service: Service, client: LocalClient, big_vm: SourceVM,
                                storage_root: Path) -> None:
    exp = export(client, big_vm, export_dir(storage_root, "exp"))
    before = ours(service, storage_root)
    rv, out = client.vsms("GetVirtualSystemImportSettingData", ImportDirectory=str(exp))
    isd = out["ImportSettingData"]
    isd["CreateCopy"] = True
    dest = export_dir(storage_root, "copy")
    isd["TargetResourcePaths"] = [str(dest / "big.vhd")]
    rv, out = client.vsms("ImportVirtualSystemEx", ImportDirectory=str(exp),
                          ImportSettingData=serialize_instance(isd))
    assert rv == ReturnCode.JOB_STARTED
    cancel_when_copying(client, out["Job"], dest)
    assert list(dest.iterdir()) == []
    assert ours(service, storage_root) == before
    assert service.store.consumed(str(exp)) is None


def test_sigkill_mid_import(service: Service, client: LocalClient, big_vm: SourceVM,
                            storage_root: Path) -> None:
    exp = export(client, big_vm, export_dir(storage_root, "exp"))
    state = storage_root / "state2"
    dest = export_dir(storage_root, "copy")
    target = dest / "big.vhd"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.crash_child", str(state), str(storage_root),
         str(exp), str(target)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline().split()
        assert line and line[0] == "COPYING", line
        job_id = line[1]
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    before = ours(service, storage_root)
    restarted = Service(Settings(state_dir=state, storage_roots=(storage_root,)))
    try:
        job = LocalClient(restarted.registry).job(pywbem.CIMInstanceName(
            names.CONCRETE_JOB, keybindings={"InstanceID": job_id}, namespace=names.NAMESPACE))
        assert job["JobState"] == JobState.EXCEPTION
        assert "stopped" in job["ErrorDescription"] or "interrupted" in job["ErrorDescription"]
        assert not target.exists()
        # the restarted instance (the child's state dir) owns nothing, and the first
        # service's VMs are as they were (each instance sees only its own VMs)
        assert ours(restarted, storage_root) == set()
        assert ours(service, storage_root) == before
        assert restarted.store.integrity_check()
    finally:
        cleanup(restarted, storage_root)
        restarted.close()
