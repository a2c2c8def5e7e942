"""The crash invariants can fail: each check reports the damage it is meant to catch."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import libvirt
import pytest

from tests import hyperv
from tests.reliability import invariants
from tests.reliability.scenarios import listing, mkdir
from vsms.app import Service
from vsms.cim import names
from vsms.cim.enums import JobState
from vsms.client import LocalClient
from vsms.model.job import JobRecord

pytestmark = pytest.mark.qemu


def test_each_invariant_reports_its_damage(service: Service, client: LocalClient,
                                           storage_root: Path, qemu_uri: str) -> None:
    prefix = f"inv-{storage_root.name}-"
    disk = str(mkdir(storage_root / "vms") / "d.vhd")
    hyperv.make_vhd(disk, "32M", data_mb=1)
    vm = hyperv.define_vm(client, f"{prefix}vm")
    hyperv.add_vhd(client, vm, disk)
    target = mkdir(storage_root / "exp")
    hyperv.finished_ok(client, *client.vsms("ExportVirtualSystem", ComputerSystem=vm,
                                            CopyVmState=True, ExportDirectory=str(target)))
    exp = target / f"{prefix}vm"
    before = listing(storage_root)
    vms = invariants.ours(service, storage_root, prefix)
    assert [v.name for v in vms] == [f"{prefix}vm"]

    # the intact state passes every check
    problems, complete = invariants.export_problems(storage_root)
    assert problems == [] and complete == {exp}
    assert invariants.file_problems(storage_root, before, listing(storage_root), vms,
                                    complete) == []
    assert invariants.vm_problems(service, vms, qemu_uri, storage_root, prefix) == []
    assert invariants.consumed_problems(service, vms) == []
    assert invariants.job_problems(service, []) == []

    # an export that looks complete but is not
    with open(exp / "Virtual Hard Disks" / "d.vhd", "ab") as fh:
        fh.write(b"\0")
    problems, complete = invariants.export_problems(storage_root)
    assert complete == set() and len(problems) == 1 and "looks complete" in problems[0]

    # a file nobody owns, a file that disappeared, a partial export left behind
    (storage_root / "stray.vhd").write_bytes(b"x")
    (target / ".x.vsms-partial-1234").mkdir()
    lost = {**before, "vms/gone.vhd": "f"}
    found = invariants.file_problems(storage_root, lost, listing(storage_root), vms, set())
    assert any("stray.vhd was left" in p for p in found), found
    assert any("vms/gone.vhd existed before" in p for p in found), found
    assert any("partial export" in p for p in invariants.export_problems(storage_root)[0])

    # a consumed mark for a VM that does not exist
    service.store.mark_consumed(str(target), str(uuid.uuid4()).upper())
    assert any("which does not exist" in p
               for p in invariants.consumed_problems(service, vms))

    # a libvirt domain without the vsms metadata
    conn = libvirt.open(qemu_uri)
    try:
        conn.defineXML(f"<domain type='qemu'><name>{prefix}orphan</name>"
                       f"<title>{prefix}orphan</title><memory unit='MiB'>32</memory>"
                       "<os><type arch='x86_64'>hvm</type></os></domain>")
        found = invariants.vm_problems(service, vms, qemu_uri, storage_root, prefix)
        assert any("has no vsms record" in p for p in found), found
        invariants.cleanup(service, qemu_uri, storage_root, prefix)
        assert invariants.foreign_domains(qemu_uri, storage_root, prefix) == []
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.lookupByName(f"{prefix}orphan").undefine()
        conn.close()

    # an interrupted job that did not end in Exception, or vanished
    rec = JobRecord(instance_id=str(uuid.uuid4()).upper(), classname=names.CONCRETE_JOB,
                    name="Lost Job", description="", state=JobState.RUNNING)
    found = invariants.job_problems(service, [rec])
    assert any("is gone" in p for p in found), found
