"""What must hold after a crash and a restart, checked on the restarted service.

Every function returns a list of problems (empty: the invariant holds). "Ours" are the VMs of
one kill point: their name starts with its prefix or one of their disks is under its storage
root (other tests share the same libvirt).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

import libvirt
import pywbem

from tests import hyperv
from vsms.app import Service
from vsms.cim import names
from vsms.cim.enums import EnabledState, JobState
from vsms.client import LocalClient
from vsms.disks import qemuimg
from vsms.errors import VsmsError
from vsms.exportdir.layout import MANIFEST
from vsms.exportdir.reader import read_export
from vsms.model.job import JobRecord
from vsms.model.vm import DriveKind, VirtualSystem


def _under(path: str, root: Path) -> bool:
    real = os.path.realpath(path)
    return real == str(root) or real.startswith(f"{root}/")


def ours(service: Service, root: Path, prefix: str) -> list[VirtualSystem]:
    return [vs for vs in service.host.list_systems()
            if vs.name.startswith(prefix) or any(_under(m.path, root) for m in vs.media)]


def foreign_domains(uri: str, root: Path, prefix: str) -> list[tuple[str, str]]:
    """(UUID, name) of every libvirt domain that mentions ``root`` or ``prefix``."""
    conn = libvirt.open(uri)
    try:
        found = []
        for dom in conn.listAllDomains(0):
            with contextlib.suppress(libvirt.libvirtError):
                xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
                if f"{root}/" in xml or prefix in xml:
                    found.append((dom.UUIDString().upper(), dom.name()))
        return found
    finally:
        conn.close()


def vm_problems(service: Service, vms: list[VirtualSystem], uri: str, root: Path,
                prefix: str) -> list[str]:
    """Each VM fully registered (libvirt, metadata, CIM view, disks); no unregistered domain."""
    problems: list[str] = []
    client = LocalClient(service.registry)
    known = {vs.guid.upper() for vs in vms}
    for guid, name in foreign_domains(uri, root, prefix):
        if guid not in known:
            problems.append(f"libvirt domain {name} ({guid}) has no vsms record (metadata)")
    for vs in vms:
        label = f"VM '{vs.name}' ({vs.guid})"
        try:
            state = service.host.state(vs.guid)
            path = pywbem.CIMInstanceName(names.COMPUTER_SYSTEM, keybindings={
                "CreationClassName": names.COMPUTER_SYSTEM, "Name": vs.guid},
                namespace=names.NAMESPACE)
            images = [r["Connection"][0] for r in hyperv.rasds(client, path)
                      if r["ResourceType"] == 21]
        except (VsmsError, AssertionError, pywbem.Error) as exc:
            problems.append(f"{label} is not fully registered: {exc}")
            continue
        if state is not EnabledState.DISABLED:
            problems.append(f"{label} is {state.name} after the restart, not off")
        disks = sorted(m.path for m in vs.disk_media())
        if sorted(images) != disks:
            problems.append(f"{label}: the CIM view shows disks {images}, libvirt has {disks}")
        for m in vs.media:
            drive = vs.drive(m.drive_id)
            if drive is None or drive.kind is not DriveKind.DISK:
                continue
            if not os.path.isfile(m.path):
                problems.append(f"{label} uses the disk {m.path}, which does not exist")
                continue
            try:
                found = qemuimg.probe_format(m.path)
            except VsmsError as exc:
                problems.append(f"{label} uses the disk {m.path}, which is unreadable: {exc}")
                continue
            if found is not m.format:
                problems.append(f"{label} records {m.path} as {m.format.value}, the file is "
                                f"{found.value}")
        problems += snapshot_problems(vs, label)
    return problems


def snapshot_problems(vs: VirtualSystem, label: str) -> list[str]:
    """Every image of every snapshot exists, and every chain (current and snapshots') of a VM
    with snapshots or snapshot overlays passes qemu-img check."""
    problems: list[str] = []
    if not vs.snapshots and not any(_is_overlay(m.path) for m in vs.disk_media()):
        return problems
    for snap in vs.snapshots:
        for m in snap.config.disk_media():
            if not os.path.isfile(m.path):
                problems.append(f"{label}: snapshot '{snap.name}' needs {m.path}, which does "
                                "not exist")
    for m in [*vs.disk_media(), *(m for s in vs.snapshots for m in s.config.disk_media())]:
        if os.path.isfile(m.path):
            bad = qemuimg.check(m.path, m.format)
            if bad:
                problems.append(f"{label}: {m.path} is damaged: {bad}")
    return problems


def _all_media(vs: VirtualSystem) -> list[str]:
    return [m.path for m in [*vs.media, *(m for s in vs.snapshots for m in s.config.media)]]


def consumed_problems(service: Service, vms: list[VirtualSystem]) -> list[str]:
    """Consumed-directory marks point at existing VMs; an in-place import is marked."""
    problems: list[str] = []
    db = service.settings.database
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute("SELECT directory, vm_guid FROM consumed_imports").fetchall()
    finally:
        conn.close()
    guids = {vs.guid.upper() for vs in vms}
    for directory, guid in rows:
        if str(guid).upper() not in guids:
            problems.append(f"{directory} is marked consumed by VM {guid}, which does not exist")
    for vs in vms:
        source = vs.imported_from
        if source and any(_under(m.path, Path(os.path.realpath(source)))
                          for m in vs.disk_media()):
            owner = service.store.consumed(source)
            if owner is None or owner.upper() != vs.guid.upper():
                problems.append(f"VM '{vs.name}' runs in place from {source}, but the directory "
                                f"is marked for {owner}: it could be imported again")
    return problems


def export_problems(root: Path) -> tuple[list[str], set[Path]]:
    """Every export that looks complete (has a manifest) verifies; no partial one is left."""
    problems: list[str] = []
    complete: set[Path] = set()
    for manifest in sorted(root.rglob(MANIFEST)):
        directory = manifest.parent
        try:
            read_export(directory, verify=True)
        except VsmsError as exc:
            problems.append(f"{directory} looks complete but is not: {exc}")
            continue
        complete.add(directory)
    for path in root.rglob("*vsms-partial*"):
        problems.append(f"partial export {path} was left behind")
    return problems, complete


def file_problems(root: Path, before: dict[str, str], after: dict[str, str],
                  vms: list[VirtualSystem], exports: set[Path]) -> list[str]:
    """No file lost; every new entry belongs to a VM's disk or a complete export."""
    used = {os.path.relpath(os.path.realpath(p), root) for vs in vms for p in _all_media(vs)}
    # an overlay of a snapshot (Snapshots/<VM>/<GUID>.qcow2) goes when merged: lost only if
    # some definition still names it
    problems = [f"{rel} existed before the operation and is gone" for rel in sorted(before)
                if rel not in after and (not _is_overlay(rel) or rel in used)]
    owned: set[str] = set()
    for vs in vms:
        for path in _all_media(vs):
            if _under(path, root):
                rel = os.path.relpath(os.path.realpath(path), root)
                owned.add(rel)
                owned.update(str(p) for p in Path(rel).parents if str(p) != ".")
    for export in exports:
        rel = os.path.relpath(export, root)
        owned.update(str(p) for p in Path(rel).parents if str(p) != ".")
    export_rels = [os.path.relpath(e, root) for e in exports]
    for rel in sorted(set(after) - set(before)):
        inside = any(rel == e or rel.startswith(f"{e}/") for e in export_rels)
        if rel not in owned and not inside:
            what = "directory" if after[rel] == "d" else "file"
            problems.append(f"{what} {rel} was left in the storage root without an owner")
    return problems


def _is_overlay(rel: str) -> bool:
    parts = Path(rel).parts
    return len(parts) >= 3 and parts[-3] == "Snapshots" and parts[-1].endswith(".qcow2")


def job_problems(service: Service, interrupted: list[JobRecord]) -> list[str]:
    """Interrupted jobs ended Exception (10) with an ErrorDescription; no job still runs."""
    problems: list[str] = []
    client = LocalClient(service.registry)
    for rec in interrupted:
        path = pywbem.CIMInstanceName(rec.classname, keybindings={"InstanceID": rec.instance_id},
                                      namespace=names.NAMESPACE)
        try:
            job = client.job(path)
        except (VsmsError, pywbem.Error) as exc:
            problems.append(f"interrupted job {rec.instance_id} ({rec.name}) is gone: {exc}")
            continue
        if job["JobState"] != JobState.EXCEPTION or not job["ErrorDescription"] \
                or not job["ErrorCode"]:
            problems.append(f"interrupted job {rec.instance_id} ({rec.name}) shows JobState "
                            f"{job['JobState']}, ErrorCode {job['ErrorCode']}, "
                            f"ErrorDescription {job['ErrorDescription']!r}")
    for rec in service.jobs.records():
        if not rec.state.finished:
            problems.append(f"job {rec.instance_id} ({rec.name}) is {rec.state.name} after "
                            "the restart")
    left = service.store.jobs_with_undo()
    if left:
        problems.append(f"undo journals left after recovery: {left}")
    if not service.store.integrity_check():
        problems.append("the database fails PRAGMA integrity_check")
    return problems


def process_problems(root: Path) -> list[str]:
    """No process outlived the crash still working on the storage root (e.g. a qemu-img)."""
    problems: list[str] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(f"{root}/".encode() in a for a in argv):
            shown = " ".join(a.decode(errors="replace") for a in argv)[:200]
            problems.append(f"process {proc.name} still works on the storage root: {shown}")
    return problems


def cleanup(service: Service, uri: str, root: Path, prefix: str) -> None:
    """Remove every VM and domain of this kill point (never another test's)."""
    for vs in ours(service, root, prefix):
        with contextlib.suppress(VsmsError):
            if service.host.state(vs.guid) is not EnabledState.DISABLED:
                service.host.turn_off(vs.guid)
        with contextlib.suppress(VsmsError):
            service.host.undefine(vs.guid)
    leftovers = foreign_domains(uri, root, prefix)
    if leftovers:
        conn = libvirt.open(uri)
        try:
            for guid, _name in leftovers:
                with contextlib.suppress(libvirt.libvirtError):
                    conn.lookupByUUIDString(guid).undefine()
        finally:
            conn.close()
