"""Removing snapshots of a running VM merges its disks live (libvirt block commit), on
qemu:///system with a VM that runs SeaBIOS on a dynamic VHD: an intermediate commit (the
removed snapshot's image sits below the one the VM writes), an active commit with a pivot (the
image the VM writes merges into the VHD), data written into the overlays (before the start
with qemu-io, while running through QEMU's own qemu-io monitor command) read back from the
merged VHD; and the recovery after the service died with a block job in QEMU: one still
mirroring (cancelled, the VM stays on its overlay) and one that completed meanwhile (its
bookkeeping finished at start-up)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import libvirt
import libvirt_qemu  # type: ignore[import-untyped]
import pytest
import pywbem

from tests.conftest import QEMU_URI, fresh_dir
from tests.lifecycle.service import Harness, make_vhd
from tests.lifecycle.test_qemu_lifecycle import change_state
from tests.snapshots.test_snapshots import (
    MIB,
    current_disk,
    ok_job,
    overlays,
    snapshot,
    vm_with_disk,
    write,
)
from vsms.app import Service
from vsms.disks import digests, qemuimg
from vsms.disks.digests import FileIdentity
from vsms.disks.reading import sha256_file
from vsms.errors import OperationFailed
from vsms.model.vm import ImageFormat
from vsms.operations.snapshot_disks import backing_of
from vsms.operations.snapshot_live import LiveMerge
from vsms.operations.transitions import Transition
from vsms.settings import Settings
from vsms.virt.blockcommit import disk_chain

pytestmark = pytest.mark.qemu
_ = make_vhd  # (vm_with_disk makes the VHD)


class Served:
    """A vsms Service on a state dir that outlives it (a restart is a new Service)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.defined: list[str] = []
        self.settings = Settings(state_dir=root / "state", storage_roots=(root,),
                                 libvirt_uri=QEMU_URI, job_workers=2)
        self.start()

    def start(self) -> None:
        self.service = Service(self.settings)
        self.svc = Harness(self.service.registry, self.service.host,
                           self.service.context.transitions)

    def restart(self) -> None:
        self.service.close()
        self.start()


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    root = fresh_dir()
    s = Served(root)
    try:
        yield s
    finally:
        for guid in s.defined:
            for act in (s.service.host.turn_off, s.service.host.undefine):
                with contextlib.suppress(Exception):
                    act(guid)
        s.service.close()
        shutil.rmtree(root, ignore_errors=True)


def _dom(guid: str) -> tuple[libvirt.virConnect, libvirt.virDomain]:
    conn = libvirt.open(QEMU_URI)
    return conn, conn.lookupByUUIDString(guid)


def live_chain(guid: str, image: str) -> list[str]:
    conn, dom = _dom(guid)
    try:
        found = disk_chain(dom.XMLDesc(0), image)
        return found[1] if found else []
    finally:
        conn.close()


def guest_write(guid: str, byte: int, offset_mib: int) -> None:
    """Write 1 MiB into the running VM's disk through QEMU's qemu-io monitor command (the
    guest's own writes, without an OS)."""
    conn, dom = _dom(guid)
    try:
        out = libvirt_qemu.qemuMonitorCommand(
            dom, f'qemu-io -d ide0-0-0 "write -P {byte} {offset_mib * MIB} {MIB}"',
            libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP)
        assert "error" not in out.lower() and "not found" not in out.lower(), out
    finally:
        conn.close()


def reads(path: str, fmt: ImageFormat, expect: dict[int, int]) -> bool:
    """Does the image read ``byte`` in the MiB at each offset of ``expect``?"""
    for offset, byte in expect.items():
        done = subprocess.run(["qemu-io", "-r", "-U", "-f", fmt.value, "-c",
                               f"read -P {byte} {offset * MIB} {MIB}", path],
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0 or "Pattern verification failed" in done.stdout:
            return False
    return True


def test_live_merges_and_recovery(served: Served) -> None:
    svc, root = served.svc, served.root
    vm, vhd = vm_with_disk(svc, root, f"snap-live-{root.name}")
    guid = str(vm["Name"])
    served.defined.append(guid)
    write(svc, vm, 0x41, 0)  # A in the VHD
    time.sleep(2 * digests.SETTLE_NS / 1e9)
    store = served.service.store
    digest = sha256_file(str(vhd), book=store)  # as an export or import records it
    s1 = snapshot(svc, vm)  # freezes the VHD: the book is told
    write(svc, vm, 0x42, 1)  # B in the first overlay
    ov1, _ = current_disk(svc, vm)
    change_state(svc, vm, 2)
    try:
        # libvirt relabelled the frozen VHD for QEMU (a new ctime): its digest is still known
        assert store.known_digest(FileIdentity.of(os.stat(vhd))) is None
        assert digests.lookup(store, FileIdentity.of(os.stat(vhd))) == digest
        s2 = snapshot(svc, vm)  # live, disk-only: the VM now writes ov2 on ov1
        ov2, _ = current_disk(svc, vm)
        guest_write(guid, 0x43, 2)  # C, into ov2
        assert live_chain(guid, ov2) == [ov2, ov1, str(vhd)]

        # an intermediate commit: ov1 (S2's frozen image) into the VHD, S2 re-pointed; the
        # VM shows Merging Disks once the merge begins (read through CIM at that moment)
        assert s1.path is not None and s2.path is not None
        shown: list[list[int]] = []
        relabel = svc.transitions.relabel

        def watch(guid_: str, transition: Transition) -> None:
            relabel(guid_, transition)
            shown.append([int(v) for v in svc.get(vm)["OperationalStatus"]])
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(svc.transitions, "relabel", watch)
            rv, out = svc.vsms("RemoveVirtualSystemSnapshot", SnapshotSettingData=s1.path)
            job = ok_job(svc, rv, out)
        assert shown == [[2, 32772]]
        assert job["PercentComplete"] == 100
        assert svc.get(vm)["OperationalStatus"] == [2]
        assert live_chain(guid, ov2) == [ov2, str(vhd)]
        assert backing_of(ov2) == str(vhd) and not Path(ov1).exists()
        vs = svc.host.get_system(guid)
        assert vs is not None
        assert [m.path for m in vs.snapshots[0].config.disk_media()] == [str(vhd)]
        assert svc.get(vm)["EnabledState"] == 2
        assert reads(str(vhd), ImageFormat.VHD, {0: 0x41, 1: 0x42})
        # merged into, the VHD changed: its frozen digest is no longer trusted
        assert digests.lookup(store, FileIdentity.of(os.stat(vhd))) is None

        # an active commit and pivot: ov2 (the image the VM writes) into the VHD
        guest_write(guid, 0x44, 3)  # D, into ov2
        rv, out = svc.vsms("RemoveVirtualSystemSnapshotTree", SnapshotSettingData=s2.path)
        ok_job(svc, rv, out)
        assert live_chain(guid, str(vhd)) == [str(vhd)]
        assert current_disk(svc, vm) == (str(vhd), ImageFormat.VHD)
        assert overlays(root, vm) == [] and svc.get(vm)["EnabledState"] == 2
        guest_write(guid, 0x45, 4)  # E: the VM writes the VHD itself now
    finally:
        change_state(svc, vm, 3)
    assert reads(str(vhd), ImageFormat.VHD, {0: 0x41, 1: 0x42, 2: 0x43, 3: 0x44, 4: 0x45})

    _recovery(served, vm, vhd)


def _crash_with(served: Served, guid: str, child: str, target: str, *, active: bool) -> None:
    """What the service leaves when it dies inside a live merge: the removed snapshot's record
    gone (done before the merge), the journal's LiveMerge record, a block job in QEMU."""
    store = served.service.store
    store.add_undo(f"crashed-{child[-12:]}", LiveMerge.kind,
                   LiveMerge(guid, child, target).args())
    conn, dom = _dom(guid)
    try:
        dev = disk_chain(dom.XMLDesc(0), child)
        assert dev is not None
        flags = libvirt.VIR_DOMAIN_BLOCK_COMMIT_ACTIVE if active else 0
        dom.blockCommit(dev[0], target, None if active else child, 0, flags)
        deadline = time.monotonic() + 60
        while True:  # active: until it mirrors (ready); intermediate: until it has ended
            info = dom.blockJobInfo(dev[0], 0)
            if (active and info and info["end"] and info["cur"] == info["end"]) or \
                    (not active and not info):
                break
            assert time.monotonic() < deadline, info
            time.sleep(0.1)
    finally:
        conn.close()


def _recovery(served: Served, vm: pywbem.CIMInstanceName, vhd: Path) -> None:
    svc, root = served.svc, served.root
    guid = str(vm["Name"])
    s1 = snapshot(svc, vm)
    assert s1.path is not None
    ov1, _ = current_disk(svc, vm)
    change_state(svc, vm, 2)
    try:
        s2 = snapshot(svc, vm)
        ov2, _ = current_disk(svc, vm)
        guest_write(guid, 0x46, 5)
        # 1. dead after the removal of S1, its intermediate commit completed in QEMU meanwhile
        vs = svc.host.get_system(guid)
        assert vs is not None
        vs.snapshots = [s for s in vs.snapshots if s.id != s1["InstanceID"][10:]]
        vs.snapshots[0].parent = ""
        svc.host.define(vs)
        _crash_with(served, guid, ov1, str(vhd), active=False)
        served.restart()
        svc = served.svc
        vs = svc.host.get_system(guid)
        assert vs is not None and [s.id for s in vs.snapshots] == [s2["InstanceID"][10:]]
        assert [m.path for m in vs.snapshots[0].config.disk_media()] == [str(vhd)]
        assert not Path(ov1).exists() and vs.discarded == []
        assert live_chain(guid, ov2) == [ov2, str(vhd)]
        assert served.service.store.jobs_with_undo() == []

        # 2. dead inside the active commit of S2's removal, the job still mirroring: cancelled
        vs.snapshots = []
        vs.previous_snapshot = ""
        svc.host.define(vs)
        _crash_with(served, guid, ov2, str(vhd), active=True)
        served.restart()
        svc = served.svc
        conn, dom = _dom(guid)
        try:
            assert dom.blockJobInfo("hda", 0) == {} or not dom.blockJobInfo("hda", 0)
        finally:
            conn.close()
        assert live_chain(guid, ov2) == [ov2, str(vhd)]  # still on its overlay
        assert current_disk(svc, vm) == (ov2, ImageFormat.QCOW2)
        assert svc.get(vm)["EnabledState"] == 2
        assert Path(ov2).is_file()

        # 3. a block commit that fails (injected): the snapshot is removed, the merge waits
        s4 = snapshot(svc, vm)
        assert s4.path is not None
        ov3, _ = current_disk(svc, vm)

        def refuse(*_args: object) -> None:
            raise OperationFailed("injected: libvirt refuses the block commit")
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(svc.host, "block_commit", refuse)
            job = ok_job(svc, *svc.vsms("RemoveVirtualSystemSnapshot",
                                        SnapshotSettingData=s4.path))
        assert "waits until the virtual machine is off" in job["Description"], job["Description"]
        assert "injected" in job["Description"]
        assert live_chain(guid, ov3) == [ov3, ov2, str(vhd)]
        vs = svc.host.get_system(guid)
        assert vs is not None and vs.snapshots == [] and current_disk(svc, vm)[0] == ov3
        assert served.service.store.jobs_with_undo() == []
        assert svc.get(vm)["EnabledState"] == 2
    finally:
        change_state(svc, vm, 3)
    # the merge that did not happen is done by the next snapshot job (here with the VM off)
    s3 = snapshot(svc, vm)
    assert s3.path is not None
    rv, out = svc.vsms("RemoveVirtualSystemSnapshotTree", SnapshotSettingData=s3.path)
    ok_job(svc, rv, out)
    assert current_disk(svc, vm) == (str(vhd), ImageFormat.VHD)
    assert overlays(root, vm) == []
    assert reads(str(vhd), ImageFormat.VHD, {0: 0x41, 1: 0x42, 4: 0x45, 5: 0x46})
    assert qemuimg.probe_format(str(vhd)) is ImageFormat.VHD
