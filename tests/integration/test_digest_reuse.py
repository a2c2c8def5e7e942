"""The service remembers the digests it computed: an import of this host's own export trusts
them while the files are unchanged, and hashes again (and catches the damage) once they change.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.integration.conftest import SourceVM, export_dir
from tests.integration.test_export_import import export, import_
from vsms.app import Service
from vsms.cim.enums import JobState
from vsms.client import LocalClient
from vsms.disks.digests import FileIdentity

pytestmark = pytest.mark.qemu

DISK = "Virtual Hard Disks/src-disk.vhd"


def _ident(path: Path) -> FileIdentity:
    return FileIdentity.of(os.stat(path))


def test_export_records_and_import_trusts_the_digests(client: LocalClient, service: Service,
                                                      source_vm: SourceVM,
                                                      storage_root: Path) -> None:
    exp = export(client, source_vm, export_dir(storage_root, "exp"))
    disk = exp / DISK
    truth = hashlib.sha256(disk.read_bytes()).hexdigest()
    assert service.store.known_digest(_ident(disk)) == truth
    assert service.store.known_digest(_ident(Path(source_vm.disk))) == truth
    # a digest planted for the unchanged file is what the import's verification goes by
    service.store.record_digest(_ident(disk), "0" * 64)
    job = import_(client, exp, new_id=True)
    assert job["JobState"] == JobState.EXCEPTION
    assert "src-disk.vhd" in job["ErrorDescription"]
    assert "does not match its checksum" in job["ErrorDescription"]
    service.store.record_digest(_ident(disk), truth)
    job = import_(client, exp, new_id=True)
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]


def test_a_changed_export_is_hashed_again(client: LocalClient, service: Service,
                                          source_vm: SourceVM, storage_root: Path) -> None:
    exp = export(client, source_vm, export_dir(storage_root, "exp"))
    disk = exp / DISK
    before = os.stat(disk)
    with open(disk, "r+b") as fh:  # damage one byte of data, keep size and modification time
        fh.seek(512 * 3 + 4096)
        byte = fh.read(1)
        fh.seek(512 * 3 + 4096)
        fh.write(bytes([byte[0] ^ 0x5A]))
    os.utime(disk, ns=(before.st_atime_ns, before.st_mtime_ns))
    job = import_(client, exp, new_id=True)
    assert job["JobState"] == JobState.EXCEPTION
    assert "src-disk.vhd" in job["ErrorDescription"]
    assert "does not match its checksum" in job["ErrorDescription"]
