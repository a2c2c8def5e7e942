"""Fixtures for the libvirt backend: hosts on test:///default and qemu:///system, VM factories,
and a teardown that removes every domain a test created, whatever state it was left in."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

import libvirt
import pytest

from tests.virt.proxy import LibvirtProxy
from vsms.model.vm import (
    Controller,
    ControllerKind,
    Drive,
    DriveKind,
    ImageFormat,
    Media,
    NetworkAdapter,
    VirtualSystem,
    default_controllers,
    new_guid,
)
from vsms.virt import events
from vsms.virt.host import VirtHost

TEST_URI = "test:///default"


def remove_domains(uri: str, guids: list[str]) -> None:
    """Destroy and undefine each domain by GUID with plain libvirt (never through vsms)."""
    events.ensure_event_loop()
    conn = libvirt.open(uri)
    try:
        for guid in guids:
            try:
                dom = conn.lookupByUUIDString(guid)
            except libvirt.libvirtError:
                continue
            with suppress(libvirt.libvirtError):
                if dom.isActive():
                    dom.destroy()
            with suppress(libvirt.libvirtError):
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                                  | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
    finally:
        conn.close()


class Tracker:
    """GUIDs a test created; teardown removes them all."""

    def __init__(self) -> None:
        self.guids: list[str] = []

    def new(self) -> str:
        guid = new_guid()
        self.guids.append(guid)
        return guid


@pytest.fixture
def created() -> Iterator[Tracker]:
    tracker = Tracker()
    yield tracker
    remove_domains(TEST_URI, tracker.guids)


@pytest.fixture
def qemu_created(qemu_uri: str) -> Iterator[Tracker]:
    tracker = Tracker()
    yield tracker
    remove_domains(qemu_uri, tracker.guids)


@pytest.fixture
def test_host(created: Tracker) -> Iterator[VirtHost]:
    host = VirtHost(TEST_URI)
    yield host
    host.close()


@pytest.fixture
def qemu_host(qemu_uri: str, qemu_created: Tracker) -> Iterator[VirtHost]:
    host = VirtHost(qemu_uri)
    yield host
    host.close()


@pytest.fixture
def proxy() -> Iterator[LibvirtProxy]:
    path = Path(f"/tmp/vsms-px-{uuid.uuid4().hex[:10]}.sock")
    p = LibvirtProxy(path)
    yield p
    p.close()


def make_image(path: Path, fmt: str, size: str = "16M", *opts: str) -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, *opts, str(path), size],
                   check=True, timeout=30)
    return path


def small_vm(guid: str, name: str = "tiny", *, disk: Path | None = None,
             disk_format: ImageFormat = ImageFormat.VHD, scsi: bool = False,
             nic_switch: str = "") -> VirtualSystem:
    """64 MiB, an empty DVD drive on IDE 1:0, a NIC not connected, and optionally a disk on
    IDE 0:0 (or on SCSI controller 0, slot 0)."""
    vs = VirtualSystem(guid=guid, name=name, memory_mb=64, processors=1)
    vs.controllers = default_controllers()
    ide1 = vs.controllers[1].dev_id
    vs.drives = [Drive(new_guid(), DriveKind.DVD, ide1, 0)]
    if disk is not None:
        if scsi:
            ctl = Controller(new_guid(), ControllerKind.SCSI, 0)
            vs.controllers.append(ctl)
            drive = Drive(new_guid(), DriveKind.DISK, ctl.dev_id, 0)
        else:
            drive = Drive(new_guid(), DriveKind.DISK, vs.controllers[0].dev_id, 0)
        vs.drives.append(drive)
        vs.media.append(Media(new_guid(), drive.dev_id, str(disk), disk_format))
    mac = "00:15:5D:" + ":".join(guid.replace("-", "")[i:i + 2] for i in (0, 2, 4))
    vs.nics = [NetworkAdapter(new_guid(), mac, nic_switch, True)]
    return vs


VmFactory = Callable[..., VirtualSystem]
