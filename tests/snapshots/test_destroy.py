"""DestroyVirtualSystem of a VM with snapshots, on qemu:///system with real qemu-img, as a
Hyper-V administrator expects it: the snapshots' files (our overlays, AVHDs) go, the VHD the
VM was given stays and holds the VM's current data, nothing is left in the snapshot folder."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from tests.lifecycle.service import Harness
from tests.snapshots.test_snapshots import (
    MIB,
    current_disk,
    ok_job,
    snapshot,
    vm_with_disk,
    write,
)
from tests.snapshots.test_snapshots import root as root  # the module-scoped fixtures
from tests.snapshots.test_snapshots import svc as svc
from vsms.operations.snapshot_disks import SNAPSHOTS

pytestmark = pytest.mark.qemu


def reads(path: Path, expect: dict[int, int]) -> bool:
    for offset, byte in expect.items():
        done = subprocess.run(["qemu-io", "-r", "-f", "vpc", "-c",
                               f"read -P {byte} {offset * MIB} {MIB}", str(path)],
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0 or "Pattern verification failed" in done.stdout:
            return False
    return True


def test_destroy_removes_the_snapshot_files_and_keeps_the_vhd(svc: Harness, root: Path) -> None:
    vm, vhd = vm_with_disk(svc, root, f"snap-destroy-{uuid.uuid4().hex[:8]}")
    guid = str(vm["Name"])
    write(svc, vm, 0x41, 0)  # A in the VHD
    s1 = snapshot(svc, vm)
    write(svc, vm, 0x42, 1)  # B after S1
    snapshot(svc, vm)  # S2 freezes B's overlay
    assert s1.path is not None
    ok_job(svc, *svc.vsms("ApplyVirtualSystemSnapshotEx", ComputerSystem=vm,
                          SnapshotSettingData=s1.path))  # two branches on the VHD now
    write(svc, vm, 0x43, 2)  # C in the current overlay
    current, _ = current_disk(svc, vm)
    folder = root / SNAPSHOTS / guid
    assert Path(current).parent == folder and len(list(folder.iterdir())) == 2

    ok_job(svc, *svc.vsms("DestroyVirtualSystem", ComputerSystem=vm))
    assert svc.host.get_system(guid) is None
    assert not folder.exists()  # every overlay gone, and the folder
    assert vhd.is_file()  # the disk it was given stays, with its current data: A and C
    assert reads(vhd, {0: 0x41, 2: 0x43}) and not reads(vhd, {1: 0x42})
