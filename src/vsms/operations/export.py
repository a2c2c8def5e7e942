"""ExportVirtualSystem(Ex): write one VM to an export directory, as Hyper-V lays it out.

prepare_export() does every quick check (the method's ReturnValue) and then only reserves the
VM (busy, "Exporting") in memory; ExportWork.run() is the job, and releases it. The export is
built under a hidden temporary name inside the ExportDirectory and renamed into place only when
complete (manifest written last), so an export that looks complete is complete. Each disk is
hashed while it is copied (one read of its data), so the manifest costs only the small files on
top (and, with a snapshot tree, the overlays whose copies were rebased, and flattened disks).
What is copied for each CopySnapshotConfiguration: ``operations.export_snapshots``. Every
side effect is journaled first, so a failure, a cancel or a crash removes the partial export.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from vsms import __version__
from vsms.cim.enums import (
    CopySnapshotConfiguration,
    EnabledState,
    OperationalStatus,
    RequestedState,
)
from vsms.disks import anchor
from vsms.disks.anchor import Dir, Identity
from vsms.disks.digests import DigestBook
from vsms.errors import AccessDenied, InvalidParameter, InvalidState, NotFound, NotSupported
from vsms.exportdir import layout, writer
from vsms.exportdir.layout import ExportConfig
from vsms.jobs.context import OpContext
from vsms.mapping import components
from vsms.mapping.exportimport import ExportOptions
from vsms.mapping.system import settings_instances
from vsms.model.vm import VirtualSystem
from vsms.operations import files
from vsms.operations.export_snapshots import (
    Image,
    copy_bytes,
    image_graph,
    one_snapshot_view,
    write_disks,
)
from vsms.operations.paths import StorageRoots
from vsms.operations.progress import PhaseProgress
from vsms.operations.reservations import Reservation as TargetHold
from vsms.operations.switchports import exported_nics
from vsms.operations.transitions import Reservation, Transition, Transitions
from vsms.operations.undo import RemoveTree
from vsms.virt.host import VirtHost

_EXPORT_ENTRIES = (layout.CONFIG, layout.VMS_DIR, layout.VHD_DIR, layout.SNAPSHOTS_DIR,
                   layout.MANIFEST)


_EXPORTING = Transition(None, RequestedState.NOT_APPLICABLE, OperationalStatus.EXPORTING,
                        "an export")


def safe_dir_name(name: str, fallback: str) -> str:
    """ElementName as a directory name: no separators or control characters, never . or .."""
    cleaned = "".join("_" if c in "/\\" or ord(c) < 32 else c for c in name).strip()
    return fallback if cleaned in ("", ".", "..") else cleaned


@dataclass
class ExportWork:
    host: VirtHost
    reservation: Reservation  # the VM, held by prepare_export; the job engine releases it
    vs: VirtualSystem
    options: ExportOptions
    export_dir: Path
    dest: Path  # the per-VM directory (== export_dir without a subdirectory)
    allow_saved: bool
    roots: StorageRoots
    book: DigestBook | None = None  # digests of files hashed before (vsms.disks.digests)
    graph: dict[str, Image] = field(default_factory=dict)  # the images of every disk chain

    @property
    def description(self) -> str:
        return f"Exporting virtual machine '{self.vs.name}' to {self.dest}"

    def run(self, ctx: OpContext) -> None:
        """The job; the VM was reserved (shown as exporting, busy) by prepare_export."""
        vs = self.vs
        targets: TargetHold | None = None
        try:
            # the export's target, reserved against every other call (one table for all)
            targets = self.roots.targets.reserve(_targets(self.export_dir, self.dest),
                                                 f"the export of '{vs.name}'")
            _check_state(self.host, vs, self.allow_saved, self.options)
            # Everything happens relative to handles opened here without following links:
            # the ExportDirectory swapped for a symbolic link fails the job, never leads it out.
            with anchor.open_dir(self.export_dir, self.roots.roots) as exp:
                name = f".{self.dest.name}.vsms-partial-{ctx.job_id[:8].lower()}"
                with files.new_dir(ctx, exp, name) as tmp:
                    for sub in (layout.VMS_DIR, layout.VHD_DIR, layout.SNAPSHOTS_DIR):
                        os.mkdir(sub, 0o755, dir_fd=tmp.fd)
                    self._write(ctx, Path(tmp.proc()))
                    self._publish(ctx, exp, tmp, name)
        finally:
            if targets is not None:
                targets.release()

    def _write(self, ctx: OpContext, tmp: Path) -> None:
        vs = self.vs
        total = copy_bytes(vs, self.graph, self.options.snapshots) \
            if self.options.copy_storage else 0
        small = max(total // 100, 1)
        phases = PhaseProgress(ctx.progress, {"copy": total, "meta": small, "hash": small})
        disks = write_disks(ctx, tmp, vs, self.graph, self.options.snapshots,
                            self.options.copy_storage, self.book, phases.phase("copy", total))
        ctx.check_cancelled()
        digests = disks.digests
        phases.done("copy")
        cfg = ExportConfig(vm_guid=vs.guid, vm_name=vs.name,
                           exported_at=datetime.now(UTC),
                           with_storage=self.options.copy_storage,
                           with_runtime=self.options.copy_runtime, disks=disks.disks,
                           source_host=socket.gethostname(), vsms_version=__version__,
                           nics=exported_nics(vs, self.host.networks.switches()),
                           snapshots=disks.snapshots, images=disks.images,
                           previous_snapshot=disks.previous, last_applied=disks.last_applied)
        kvp_items = components.export_instance(vs)  # the host's key-value items, if any
        writer.write_exp(tmp, vs.guid, [*settings_instances(vs),
                                        *([kvp_items] if kvp_items is not None else [])])
        writer.write_config(tmp, cfg)
        phases.done("meta")
        ctx.check_cancelled()
        writer.write_manifest(tmp, progress=phases.phase("hash", 1), cancel=ctx.cancel_event,
                              known=digests)
        phases.done("hash")

    def _publish(self, ctx: OpContext, exp: Dir, tmp: Dir, name: str) -> None:
        """Rename the finished export into place, never over anything (RENAME_NOREPLACE);
        each renamed entry is journaled first by the inode it is."""
        ctx.check_cancelled()
        if self.dest != self.export_dir:
            dest = self.dest.name
            with contextlib.suppress(FileNotFoundError):
                st = exp.lstat(dest)
                if not stat.S_ISDIR(st.st_mode):
                    raise _taken(self.dest)
                try:
                    os.rmdir(dest, dir_fd=exp.fd)  # only an empty directory (as in prepare)
                except OSError as exc:
                    raise _taken(self.dest) from exc
            ctx.add_undo(RemoveTree(exp.path, dest, tmp.identity.dev, tmp.identity.ino))
            self._rename(exp, name, exp, dest)
        else:
            for entry in _EXPORT_ENTRIES:  # manifest last: it marks the export complete
                ident = Identity.of(tmp.lstat(entry))
                ctx.add_undo(RemoveTree(exp.path, entry, ident.dev, ident.ino))
                self._rename(tmp, entry, exp, entry)
            os.rmdir(name, dir_fd=exp.fd)
        os.fsync(exp.fd)

    def _rename(self, src_dir: Dir, src: str, dst_dir: Dir, dst: str) -> None:
        try:
            anchor.rename_noreplace(src_dir, src, dst_dir, dst)
        except FileExistsError:
            raise _taken(Path(dst_dir.path) / dst) from None


def _taken(path: Path) -> InvalidParameter:
    return InvalidParameter(f"{path} appeared while the export was written; an export never "
                            "overwrites: remove it or export to another directory")


def _check_state(host: VirtHost, vs: VirtualSystem, allow_saved: bool,
                 options: ExportOptions) -> None:
    state = host.state(vs.guid)
    allowed = {EnabledState.DISABLED} | ({EnabledState.SUSPENDED} if allow_saved else set())
    if state not in allowed:
        need = "turned off or saved" if allow_saved else "turned off"
        raise InvalidState(
            f"cannot export virtual machine '{vs.name}' ({vs.guid}): it is {state.name.lower()}; "
            f"it must be {need} (RequestStateChange 3{' or 32769' if allow_saved else ''}) first")
    if state is EnabledState.SUSPENDED and options.copy_runtime:
        raise NotSupported(
            f"virtual machine '{vs.name}' is in a saved state and exporting run-time state is not "
            "supported yet: set CopyVmRuntimeInformation to FALSE, or turn the VM off first")


def check_disks_confined(roots: StorageRoots, vs: VirtualSystem, verb: str) -> None:
    """AccessDenied (32769) when a disk of ``vs`` lies outside the storage roots (by any route
    ``StorageRoots.confine`` knows): a VM's disks are read only from inside the roots, whoever
    put them there."""
    for media in vs.disk_media():
        try:
            roots.confine(media.path, "its disk")
        except AccessDenied as exc:
            raise AccessDenied(
                f"cannot {verb} virtual machine '{vs.name}' ({vs.guid}): {exc}. vsms reads and "
                "writes a virtual machine's disks only inside the storage roots: move the disk "
                "under a storage root and attach it from there, or add its directory as a "
                "storage root") from None


def prepare_export(host: VirtHost, roots: StorageRoots, transitions: Transitions, guid: str,
                   export_directory: str, options: ExportOptions, *,
                   allow_saved: bool, book: DigestBook | None = None) -> ExportWork:
    """Quick checks of ExportVirtualSystem(Ex); raises the VsmsError whose code is returned.

    On success the VM is reserved for the export: the caller hands ``.reservation`` to the
    job that runs the work, or releases it."""
    vs = host.get_system(guid)
    if vs is None:
        raise NotFound(f"virtual machine {guid} does not exist: pass the path of an "
                       "existing Msvm_ComputerSystem")
    current = transitions.get(guid)
    if current is not None:
        what = current.what or "a state change"
        raise InvalidState(f"virtual machine '{vs.name}' is busy: {what} is in progress; wait "
                           "for its job to finish")
    _check_state(host, vs, allow_saved, options)
    check_disks_confined(roots, vs, "export")
    if options.snapshots is CopySnapshotConfiguration.EXPORT_ONE_SNAPSHOT:
        # the VM as that snapshot recorded it, its disks merged; storage/runtime flags ignored
        vs = one_snapshot_view(vs, options.snapshot)
        options = replace(options, copy_storage=True, copy_runtime=False)
    graph = image_graph(vs, roots, "export")
    export_dir = roots.confine(export_directory, "ExportDirectory")
    if not export_dir.exists():
        raise InvalidParameter(
            f"ExportDirectory {export_directory} does not exist: create it first")
    if not export_dir.is_dir():
        raise InvalidParameter(f"ExportDirectory {export_directory} is not a directory")
    if options.create_subdirectory:
        dest = export_dir / safe_dir_name(vs.name, vs.guid)
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise InvalidParameter(
                f"the export target {dest} already exists and is not empty; an export never "
                "overwrites: remove it or pass another ExportDirectory")
    else:
        dest = export_dir
        clash = [e for e in _EXPORT_ENTRIES if (export_dir / e).exists()]
        if clash:
            raise InvalidParameter(
                f"ExportDirectory {export_directory} already holds an export ({', '.join(clash)}); "
                "an export never overwrites: pass an empty directory or set "
                "CreateVmExportSubdirectory to TRUE")
    roots.targets.check(_targets(export_dir, dest))  # reserved when the job starts
    # Reserve the VM now, not when the job starts: a start or destroy request that arrives
    # while the export is queued is refused as busy instead of failing the export later.
    held = transitions.begin(vs.guid, _EXPORTING, vs.name)
    return ExportWork(host=host, reservation=held, vs=vs, options=options,
                      export_dir=export_dir, dest=dest, allow_saved=allow_saved, roots=roots,
                      book=book, graph=graph)


def _targets(export_dir: Path, dest: Path) -> list[Path]:
    """What an export creates: its subdirectory, or its entries in the ExportDirectory."""
    return [dest] if dest != export_dir else [export_dir / e for e in _EXPORT_ENTRIES]
