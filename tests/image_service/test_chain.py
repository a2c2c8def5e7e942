"""MergeVirtualHardDisk, ReconnectParentVirtualHardDisk and ValidateVirtualHardDisk on real
differencing chains; the refusals for disks a (running) VM uses; a job terminated mid-copy;
one WS-Man Invoke."""

from __future__ import annotations

import subprocess
import threading
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
import pywbem

from tests.conftest import fresh_dir
from tests.image_service.conftest import (
    DEADLINE,
    MIB,
    files,
    holds,
    info,
    make,
    qemu_io,
    refused,
    run,
    same,
)
from vsms.app import Service
from vsms.cim import names
from vsms.cim.enums import JobState, ReturnCode, StateChangeReturn, StorageJobType
from vsms.client import LocalClient
from vsms.disks import imageops
from vsms.model.vm import (
    Drive,
    DriveKind,
    ImageFormat,
    Media,
    VirtualSystem,
    default_controllers,
    new_guid,
)
from vsms.wbem.dispatch import Dispatcher
from vsms.wsman.handler import WsmanHandler

pytestmark = pytest.mark.qemu
OK, FAILED = JobState.COMPLETED, JobState.EXCEPTION


def flatten(src: Path, dst: Path) -> Path:
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(src), str(dst)],
                   check=True, timeout=60)
    return dst


def test_merge_into_parent_and_into_ancestor(client: LocalClient, work: Path) -> None:
    base = make(work / "base.vhd", 16 * MIB)
    qemu_io(base, "write -P 0x11 0 1M", f"write -P 0x12 {4 * MIB} 1M")
    mid = make(work / "mid.qcow2", 0, backing=base)
    qemu_io(mid, f"write -P 0x21 {MIB} 1M", f"write -P 0x22 {4 * MIB} 512k")
    top = make(work / "top.qcow2", 0, backing=mid)
    qemu_io(top, f"write -P 0x31 {2 * MIB} 1M")
    expected = flatten(top, work / "expected.raw")

    merge, bad = "MergeVirtualHardDisk", ReturnCode.INVALID_PARAMETER
    assert refused(client, merge, SourcePath=str(base), DestinationPath=str(mid))[0] == bad
    assert refused(client, merge, SourcePath=str(top), DestinationPath=str(expected))[0] == bad
    assert refused(client, merge, SourcePath=str(top), DestinationPath=str(top))[0] == bad
    assert refused(client, merge, SourcePath=str(work / "no.qcow2"),
                   DestinationPath=str(base))[0] == ReturnCode.FILE_NOT_FOUND
    assert refused(client, merge, SourcePath=str(top),
                   DestinationPath="/etc/hostname")[0] == ReturnCode.ACCESS_DENIED

    job = run(client, merge, SourcePath=str(top), DestinationPath=str(base))  # an ancestor
    assert job["JobState"] == OK, job["ErrorDescription"]
    assert job["Type"] == StorageJobType.MERGING and job["PercentComplete"] == 100
    assert same(base, expected)
    assert files(work) == {"base.vhd", "expected.raw"}  # the merged overlays are gone

    child = make(work / "child.qcow2", 0, backing=base)
    qemu_io(child, f"write -P 0x41 {8 * MIB} 2M")
    expected = flatten(child, work / "expected2.raw")
    job = run(client, merge, SourcePath=str(child), DestinationPath=str(base))  # the parent
    assert job["JobState"] == OK, job["ErrorDescription"]
    assert same(base, expected) and holds(base, 0x41, 8 * MIB, 2 * MIB)
    assert "child.qcow2" not in files(work)


def test_validate_and_reconnect_a_broken_chain(client: LocalClient, work: Path) -> None:
    parent = make(work / "parent.vhdx", 8 * MIB)
    qemu_io(parent, "write -P 0x44 0 1M")
    child = make(work / "child.qcow2", 0, backing=parent)
    qemu_io(child, f"write -P 0x55 {MIB} 1M")
    job = run(client, "ValidateVirtualHardDisk", Path=str(child))
    assert job["JobState"] == OK, job["ErrorDescription"]
    assert job["Type"] == StorageJobType.VALIDATE

    moved = work / "moved.vhdx"
    parent.rename(moved)
    job = run(client, "ValidateVirtualHardDisk", Path=str(child))
    assert job["JobState"] == FAILED and job["ErrorCode"] == ReturnCode.FILE_NOT_FOUND
    assert job["Child"] == str(child) and job["Parent"] == str(parent)  # where the link broke

    reconnect = "ReconnectParentVirtualHardDisk"
    rv, out = client.invoke(names.IMAGE_SERVICE, reconnect, ChildPath=str(child),
                            ParentPath=str(moved), Force=False)
    assert rv == ReturnCode.COMPLETED, out
    assert info(child)["backing-filename"] == str(moved)
    assert holds(child, 0x44, 0, MIB) and holds(child, 0x55, MIB, MIB)
    job = run(client, "ValidateVirtualHardDisk", Path=str(child))
    assert job["JobState"] == OK, job["ErrorDescription"]

    bad = ReturnCode.INVALID_PARAMETER
    assert refused(client, reconnect, ChildPath=str(moved), ParentPath=str(child),
                   Force=True)[0] == bad  # not a differencing disk
    assert refused(client, reconnect, ChildPath=str(child), ParentPath=str(child),
                   Force=True)[0] == bad
    grandchild = make(work / "grandchild.qcow2", 0, backing=child)
    assert refused(client, reconnect, ChildPath=str(child), ParentPath=str(grandchild),
                   Force=True)[0] == bad  # the chain would loop
    assert refused(client, reconnect, ChildPath=str(child), ParentPath=str(work / "no.vhdx"),
                   Force=True)[0] == ReturnCode.FILE_NOT_FOUND
    assert refused(client, reconnect, ChildPath="/etc/hostname", ParentPath=str(moved),
                   Force=True)[0] == ReturnCode.ACCESS_DENIED
    assert info(child)["backing-filename"] == str(moved)

    # a loop made behind the service's back, a parent outside the roots, a damaged image
    subprocess.run(["qemu-img", "rebase", "-u", "-f", "qcow2", "-b", str(grandchild), "-F",
                    "qcow2", str(child)], check=True, timeout=60)
    job = run(client, "ValidateVirtualHardDisk", Path=str(grandchild))
    assert job["JobState"] == FAILED and job["ErrorCode"] == bad
    assert "loops" in job["ErrorDescription"]
    outside = fresh_dir()
    try:
        stray = make(work / "stray.qcow2", 0, backing=make(outside / "p.qcow2", MIB))
        job = run(client, "ValidateVirtualHardDisk", Path=str(stray))
        assert job["JobState"] == FAILED and job["ErrorCode"] == ReturnCode.ACCESS_DENIED
        assert job["Child"] == str(stray)
    finally:
        subprocess.run(["rm", "-rf", str(outside)], check=False)
    damaged = make(work / "damaged.qcow2", 4 * MIB)
    qemu_io(damaged, "write -P 0x66 0 2M")
    with damaged.open("r+b") as f:
        f.truncate(256 * 1024)  # the data clusters are gone
    job = run(client, "ValidateVirtualHardDisk", Path=str(damaged))
    assert job["JobState"] == FAILED and job["ErrorCode"] == ReturnCode.FAILED, \
        job["ErrorDescription"]
    assert refused(client, "ValidateVirtualHardDisk",
                   Path=str(work / "none.vhd"))[0] == ReturnCode.FILE_NOT_FOUND


def test_disks_of_a_vm_are_refused(service: Service, client: LocalClient, work: Path) -> None:
    base = make(work / "base.qcow2", 16 * MIB)
    top = make(work / "top.qcow2", 0, backing=base)
    vs = VirtualSystem(guid=new_guid(), name=f"image-service-{work.parent.name}", memory_mb=64)
    vs.controllers = default_controllers()
    drive = Drive(new_guid(), DriveKind.DISK, vs.controllers[0].dev_id, 0)
    vs.drives = [drive]
    vs.media = [Media(new_guid(), drive.dev_id, str(top), ImageFormat.QCOW2)]
    host = service.host
    host.define(vs)
    used = ReturnCode.SYSTEM_IN_USE
    size = pywbem.Uint64(32 * MIB)
    try:
        host.start(vs.guid)
        for method, params in (
                ("ExpandVirtualHardDisk", {"Path": str(base), "MaxInternalSize": size}),
                ("CompactVirtualHardDisk", {"Path": str(base)}),
                ("ConvertVirtualHardDisk", {"SourcePath": str(top), "Type": pywbem.Uint16(3),
                                            "DestinationPath": str(work / "copy.vhdx")}),
                ("MergeVirtualHardDisk", {"SourcePath": str(top),
                                          "DestinationPath": str(base)}),
                ("ReconnectParentVirtualHardDisk", {"ChildPath": str(top),
                                                    "ParentPath": str(base), "Force": True}),
                ("ValidateVirtualHardDisk", {"Path": str(top)})):
            rv, why = refused(client, method, **params)
            assert rv == used and vs.guid in why, (method, rv, why)
        host.turn_off(vs.guid)
        # off: a merge or compaction is still refused (the VM would lose its disk), an
        # expansion of the parent is not
        rv, why = refused(client, "MergeVirtualHardDisk", SourcePath=str(top),
                          DestinationPath=str(base))
        assert rv == used and "remove the disk" in why
        assert refused(client, "CompactVirtualHardDisk", Path=str(top))[0] in (
            used, ReturnCode.NOT_SUPPORTED)
        job = run(client, "ExpandVirtualHardDisk", Path=str(base), MaxInternalSize=size)
        assert job["JobState"] == OK, job["ErrorDescription"]
    finally:
        with suppress(Exception):
            host.turn_off(vs.guid)
        with suppress(Exception):
            host.undefine(vs.guid)
    assert files(work) == {"base.qcow2", "top.qcow2"}


def test_a_terminated_job_leaves_the_disk_as_it_was(client: LocalClient, work: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    disk = make(work / "disk.vhdx", 16 * MIB)
    qemu_io(disk, "write -P 0x77 0 4M")
    before = disk.read_bytes()
    real = imageops.convert_into
    copied, release = threading.Event(), threading.Event()

    def slow(*args: Any, **kwargs: Any) -> None:
        real(*args, **kwargs)  # the whole new image is written...
        copied.set()
        release.wait(DEADLINE)  # ...and the job is stopped before it replaces the original

    monkeypatch.setattr(imageops, "convert_into", slow)
    rv, out = client.invoke(names.IMAGE_SERVICE, "CompactVirtualHardDisk", Path=str(disk))
    assert rv == ReturnCode.JOB_STARTED
    try:
        assert copied.wait(DEADLINE)
        assert len(files(work)) == 2  # the original and the hidden new copy
        rv, why = refused(client, "ExpandVirtualHardDisk", Path=str(disk),
                          MaxInternalSize=pywbem.Uint64(32 * MIB))
        assert rv == ReturnCode.SYSTEM_IN_USE and "running job" in why
        assert refused(client, "ConvertVirtualHardDisk", SourcePath=str(disk),
                       DestinationPath=str(work / "c.vhd"),
                       Type=pywbem.Uint16(3))[0] == ReturnCode.SYSTEM_IN_USE
        rv, _ = client.invoke(out["Job"], "RequestStateChange", RequestedState=pywbem.Uint16(4))
        assert rv == StateChangeReturn.TRANSITION_STARTED
    finally:
        release.set()
    job = client.wait(out["Job"], timeout=DEADLINE)
    assert job["JobState"] == JobState.TERMINATED
    assert files(work) == {"disk.vhdx"} and disk.read_bytes() == before
    job = run(client, "ExpandVirtualHardDisk", Path=str(disk),  # released
              MaxInternalSize=pywbem.Uint64(32 * MIB))
    assert job["JobState"] == OK, job["ErrorDescription"]


def test_validate_over_wsman(service: Service, client: LocalClient, work: Path) -> None:
    disk = make(work / "w.vhdx", MIB)
    uri = f"http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/{names.IMAGE_SERVICE}"
    svc = client.service(names.IMAGE_SERVICE)
    sel = "".join(f'<wsman:Selector Name="{k}">{v}</wsman:Selector>'
                  for k, v in svc.keybindings.items())
    body = (f'<p:ValidateVirtualHardDisk_INPUT xmlns:p="{uri}"><p:Path>{disk}</p:Path>'
            "</p:ValidateVirtualHardDisk_INPUT>")
    env = ('<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
           'xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
           'xmlns:wsman="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header>'
           f'<wsa:Action s:mustUnderstand="true">{uri}/ValidateVirtualHardDisk</wsa:Action>'
           "<wsa:MessageID>uuid:11111111-2222-3333-4444-555555555555</wsa:MessageID>"
           "<wsa:ReplyTo><wsa:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/"
           "anonymous</wsa:Address></wsa:ReplyTo>"
           f'<wsman:ResourceURI s:mustUnderstand="true">{uri}</wsman:ResourceURI>'
           f"<wsman:SelectorSet>{sel}</wsman:SelectorSet></s:Header>"
           f"<s:Body>{body}</s:Body></s:Envelope>")
    handler = WsmanHandler(Dispatcher(service.registry, "localhost"))
    reply = handler.handle("POST", {":path": "/wsman",
                                    "content-type": "application/soap+xml;charset=UTF-8"},
                           env.encode())
    text = reply.body.decode()
    assert reply.status == 200, text
    assert "ValidateVirtualHardDisk_OUTPUT" in text and ">4096</" in text
    assert names.STORAGE_JOB in text
    jobs = [j for j in client.registry.enumerate_instances(names.NAMESPACE, names.STORAGE_JOB)
            if str(disk) in j["Description"]]
    assert len(jobs) == 1
    assert client.wait(jobs[0].path, timeout=DEADLINE)["JobState"] == OK
