"""ImportVirtualSystem / ImportVirtualSystemEx: register an exported VM, in place or as a copy.

prepare_import() runs the quick checks of the method call (no side effects). ImportWork.run()
is the job: it validates the whole export first (manifest checksums, every referenced disk
present and of its stated format) and reports every problem at once; only then does it copy
disks (CreateCopy) or claim the directory (in place), and define the VM. A disk that is copied
unchanged has its checksum verified while it is copied (its data is read once); when it does not
match, the copy is deleted and the import fails as if the check had come first. Each side effect
is journaled before it happens, so a failure, a cancel or a crash leaves no half-imported VM.
Copy targets are reserved against every other call (``StorageRoots.targets``), created
exclusively relative to a handle of their folder opened without following links
(``operations.files``), written through that open file, and checked to still be what their path
leads to before the VM is defined with them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from vsms.disks import copy as diskcopy
from vsms.disks import qemuimg
from vsms.disks.api import ProgressFn
from vsms.disks.convert import convert_file, format_for_path
from vsms.disks.lanes import CopyTask, run_lanes
from vsms.errors import AccessDenied, InUse, InvalidParameter, ValidationFailed
from vsms.exportdir.reader import (
    ExportPackage,
    checksum_mismatch,
    listed_checksums,
    read_export,
    verify_checksums,
)
from vsms.exportdir.reader import (
    check_import_directory as check_directory,
)
from vsms.jobs.context import OpContext
from vsms.mapping.exportimport import ImportOptions
from vsms.mapping.system import system_from_instances
from vsms.model.job import AffectedElement
from vsms.model.vm import DriveKind, ImageFormat, Media, VirtualSystem
from vsms.operations import files
from vsms.operations.identity import with_new_identity
from vsms.operations.import_snapshots import (
    TreePlan,
    attach,
    copy_tree,
    is_tree,
    plan_tree,
    refuse_targets,
    renew_tree,
    tree_bytes,
)
from vsms.operations.paths import StorageRoots
from vsms.operations.progress import PhaseProgress, offset
from vsms.operations.reservations import Reservation
from vsms.operations.snapshot_disks import SNAPSHOTS
from vsms.operations.switchports import (
    ImportLinks,
    add_port,
    plan_import_links,
    recorded_switches,
)
from vsms.operations.undo import RemoveSwitchPort, Undefine, UnmarkConsumed
from vsms.store.db import Store
from vsms.virt.host import GUID_TAKEN, VirtHost


def check_import_directory(roots: StorageRoots, store: Store, raw: str) -> Path:
    """The quick checks every import method makes on ImportDirectory (ReturnValue on failure):
    confined to the roots, then the one directory check of ``exportdir.reader``, then not
    imported in place already."""
    directory = roots.confine(raw, "ImportDirectory")
    directory = check_directory(directory, f"ImportDirectory {raw}")
    owner = store.consumed(str(directory))
    if owner is not None:
        raise InUse(
            f"ImportDirectory {raw} was already imported in place as virtual machine {owner} "
            "and now holds that VM's files; it cannot be imported again: export the VM again, "
            "or import another export with CreateCopy TRUE so it stays reusable")
    return directory


@dataclass(frozen=True)
class Copy:
    """One disk to copy on import; a target whose extension names another format converts."""

    src: str
    src_format: ImageFormat
    dst: str
    dst_format: ImageFormat
    rel: str = ""  # src relative to the export directory when it is the export's own file


@dataclass
class ImportWork:
    host: VirtHost
    store: Store
    roots: StorageRoots
    directory: Path
    options: ImportOptions
    # DefaultVirtualHardDiskPath: disks copied without a target go to <this>/<GUID>/Virtual Hard
    # Disks (None: <first storage root>/Virtual Machines)
    vhd_root: Path | None = None
    _reservation: Reservation | None = field(default=None, init=False, repr=False)
    _links: ImportLinks = field(default_factory=ImportLinks, init=False, repr=False)
    _tree: TreePlan | None = field(default=None, init=False, repr=False)

    @property
    def description(self) -> str:
        how = "as a copy" if self.options.create_copy else "in place"
        return f"Importing virtual machine from {self.directory} {how}"

    def run(self, ctx: OpContext) -> None:
        try:
            self._run(ctx)
        finally:
            if self._reservation is not None:
                self._reservation.release()

    def _run(self, ctx: OpContext) -> None:
        size = sum(p.stat().st_size for p in self.directory.rglob("*") if p.is_file())
        create_copy = self.options.create_copy
        # an export with snapshots has their settings in Snapshots/: its images are copied by
        # the tree's own phase (a chain without snapshots goes there too, unweighted)
        tree_size = size if any((self.directory / "Snapshots").glob("*.exp")) else 0
        phases = PhaseProgress(ctx.progress, {"verify": size // 100 + 1, "copy": size,
                                              "tree": tree_size, "define": 1}
                               if create_copy else {"verify": 1, "define": 0.02})
        # with a copy, the disks' checksums are verified while they are copied (one read)
        pkg = read_export(self.directory, verify=True, progress=phases.phase("verify", size),
                          cancel=ctx.cancel_event, defer_disks=create_copy, book=self.store)
        phases.done("verify")
        ctx.check_cancelled()
        vs, copies = self._plan(pkg)
        tree = self._tree
        if create_copy:
            # one table for every call that creates files: a target is never shared
            targets = [c.dst for c in copies] + ([c.dst for c in tree.copies] if tree else [])
            self._reservation = self.roots.targets.reserve(
                [Path(t) for t in targets], f"the import of {self.directory}")
            self._copy(ctx, pkg, copies, phases)
            if tree is not None:
                copy_tree(ctx, self.roots, vs, tree, phases.phase("tree", tree_bytes(tree)))
            phases.done("tree")
        else:
            ctx.add_undo(UnmarkConsumed(str(self.directory), vs.guid))
            self.store.mark_consumed(str(self.directory), vs.guid)
        ctx.check_cancelled()
        for switch_id, port in self._links.ports:  # a new port for each connected adapter
            ctx.add_undo(RemoveSwitchPort(switch_id, port))
            add_port(self.host, switch_id, port, f"{vs.name} adapter")
        ctx.add_undo(Undefine(vs.guid))
        self.host.define(vs)
        ctx.add_affected(AffectedElement(
            "Msvm_ComputerSystem", {"CreationClassName": "Msvm_ComputerSystem", "Name": vs.guid},
            [5]))
        ctx.status(f"imported as virtual machine '{vs.name}' ({vs.guid})")
        notes = [*self._links.notes, *(tree.notes if tree else [])]
        if notes:
            ctx.describe("; ".join([self.description, *notes]))

    # ------------------------------------------------------------------ planning (no effects)
    def _plan(self, pkg: ExportPackage) -> tuple[VirtualSystem, list[Copy]]:
        opts = self.options
        vs = system_from_instances(pkg.instances,
                                   formats={d.dev_id: d.format for d in pkg.config.disks},
                                   limits=self.host.limits())
        recorded = recorded_switches(vs, pkg.config.nics)  # by adapter index, before new IDs
        problems: list[str] = []
        by_dev = {d.dev_id: (i, d) for i, d in enumerate(pkg.config.disks)}
        from_export: dict[str, str] = {}  # source path -> path relative to the export
        tree = is_tree(pkg)  # then the tree's plan places every image (below)
        media = [] if tree else vs.disk_media()
        for m in media:
            entry = by_dev.get(m.dev_id)
            if entry is None:
                problems.append(f"the disk {m.path} in the .exp file has no entry in config.xml")
                continue
            index, disk = entry
            src = self._source(index, disk.file, disk.original_path, problems)
            if src is not None:
                if disk.file == "" or os.path.realpath(src) != os.path.realpath(
                        self.directory / disk.file):
                    fmt = qemuimg.probe_format(src) if os.path.isfile(src) else None
                    if fmt is not None and fmt != disk.format:
                        problems.append(f"the disk {src} is {fmt.value}, not {disk.format.value} "
                                        "as the export records")
                else:
                    from_export[src] = disk.file
                m.path = src
        for m in vs.media:
            drive = vs.drive(m.drive_id)
            if drive is not None and drive.kind is DriveKind.DVD and not os.path.exists(m.path):
                vs.media.remove(m)  # the ISO is not part of an export; the drive stays, empty
        if problems:
            raise ValidationFailed(problems, summary=f"cannot import {self.directory}")
        old = vs
        if opts.generate_new_id:
            vs = with_new_identity(vs)
        else:
            existing = self.host.get_system(vs.guid)
            if existing is not None:
                raise InUse(
                    f"a virtual machine with ID {vs.guid} already exists: '{existing.name}'; "
                    "import with GenerateNewID TRUE, or destroy that virtual machine first")
            if self.host.guid_taken(vs.guid):  # another instance's or a virsh domain: no details
                raise InUse(f"cannot import {self.directory} with ID {vs.guid}: {GUID_TAKEN}; "
                            "import with GenerateNewID TRUE to give it a new GUID")
        vs = replace(vs, name=opts.name or vs.name,
                     scope_of_residence=opts.security_scope or vs.scope_of_residence,
                     imported_from=str(self.directory))
        self._links = plan_import_links(self.host.networks.switches(), vs, recorded,
                                        opts.target_network_connections)
        copies: list[Copy] = []
        if tree:
            self._tree = self._plan_tree(pkg, old, vs)
        elif opts.create_copy:
            copies = self._targets(vs, vs.disk_media(), from_export)
        if opts.create_copy:
            if opts.target_vm_data_root:
                vs.external_data_root = str(self.roots.confine(opts.target_vm_data_root,
                                                               "TargetVmDataRoot"))
        else:
            in_use = self.host.paths_in_use()
            for m in vs.disk_media():
                owner = in_use.get(os.path.realpath(m.path))
                if owner is not None:
                    raise InUse(f"the disk {m.path} is already used by virtual machine {owner}: "
                                "import with CreateCopy TRUE to get an independent copy")
        return vs, copies

    def _plan_tree(self, pkg: ExportPackage, old: VirtualSystem,
                   vs: VirtualSystem) -> TreePlan:
        """The snapshot tree's plan (import_snapshots), attached to ``vs``."""
        opts = self.options
        folder: Path | None = None
        if opts.create_copy:
            refuse_targets(opts.target_resource_paths)
            if opts.target_vhd_data_root:
                folder = self.roots.confine(opts.target_vhd_data_root, "TargetVhdDataRoot")
            else:
                base = self.vhd_root or self.roots.roots[0] / "Virtual Machines"
                folder = self.roots.confine(str(base / vs.guid / "Virtual Hard Disks"),
                                            "the default copy target")
        if opts.create_copy and opts.target_snapshot_data_root:  # where memory states go
            vs.snapshot_data_root = str(self.roots.confine(opts.target_snapshot_data_root,
                                                           "TargetSnapshotDataRoot"))
        overlays = None
        if folder is not None:  # the folder snapshot_dir() gives the VM once attached
            root = vs.snapshot_data_root or vs.external_data_root or str(folder)
            overlays = self.roots.confine(os.path.join(root, SNAPSHOTS, vs.guid.upper()),
                                          "the snapshot folder")
        plan = plan_tree(pkg, self.roots, vs, folder, overlays)
        attach(plan, vs)
        if opts.generate_new_id:
            renew_tree(old, vs, plan)
        return plan

    def _source(self, index: int, rel: str, original: str, problems: list[str]) -> str | None:
        opts = self.options
        name = Path(rel or original).name
        if index < len(opts.source_resource_paths) and opts.source_resource_paths[index]:
            candidate = str(self.roots.confine(opts.source_resource_paths[index],
                                               "SourceResourcePaths"))
        elif opts.source_vhd_data_root:
            root = self.roots.confine(opts.source_vhd_data_root, "SourceVhdDataRoot")
            candidate = str(root / name)
        elif rel:
            return str(self.directory / rel)
        else:
            try:  # every confinement rule: symlinks, mounts, qcow2 references
                candidate = str(self.roots.confine(original, "the original disk path"))
            except AccessDenied as err:
                problems.append(
                    f"the disk {original} was exported without storage and cannot be used "
                    f"where it is ({err}): set SourceResourcePaths to where the disk is now")
                return None
        if not os.path.isfile(candidate):
            problems.append(f"the disk {candidate} does not exist: the export was made without "
                            "storage or the disk moved; set SourceResourcePaths or "
                            "SourceVhdDataRoot to where the disk is now")
            return None
        return candidate

    def _targets(self, vs: VirtualSystem, disks: list[Media],
                 from_export: dict[str, str]) -> list[Copy]:
        opts = self.options
        base = self.vhd_root or self.roots.roots[0] / "Virtual Machines"
        default_root = base / vs.guid / "Virtual Hard Disks"
        copies: list[Copy] = []
        seen: set[str] = set()
        for i, m in enumerate(disks):
            name = Path(m.path).name
            if i < len(opts.target_resource_paths) and opts.target_resource_paths[i]:
                dst = self.roots.confine(opts.target_resource_paths[i], "TargetResourcePaths")
                if not dst.parent.is_dir():
                    raise InvalidParameter(f"the folder of TargetResourcePaths entry {dst} does "
                                           "not exist: create it first")
            elif opts.target_vhd_data_root:
                root = self.roots.confine(opts.target_vhd_data_root, "TargetVhdDataRoot")
                if not root.is_dir():
                    raise InvalidParameter(f"TargetVhdDataRoot {root} does not exist: create it "
                                           "first")
                dst = root / name
            else:  # confined too: a symlink planted there must not lead the copy outside
                dst = self.roots.confine(str(default_root / name), "the default copy target")
            if dst.exists() or str(dst) in seen:
                raise InvalidParameter(
                    f"the copy target {dst} already exists; an import never overwrites: set "
                    "TargetResourcePaths or TargetVhdDataRoot to a free location")
            seen.add(str(dst))
            target_fmt = format_for_path(str(dst)) or m.format
            copies.append(Copy(m.path, m.format, str(dst), target_fmt,
                               from_export.get(m.path, "")))
            m.path, m.format = str(dst), target_fmt
        return copies

    # ------------------------------------------------------------------ effects
    def _copier(self, pkg: ExportPackage, c: Copy, expected: str | None, fd: int
                ) -> Callable[[ProgressFn, threading.Event], None]:
        """The copy of one disk into the file open as ``fd`` (created by the job): converted
        when the target format differs (e.g. VHD -> qcow2: QEMU can save the state of a VM
        only on qcow2/raw), verified against ``expected`` while copied when that is given,
        plainly copied otherwise. A partial or mismatching copy is removed by the rollback."""
        def run(progress: ProgressFn, cancel: threading.Event) -> None:
            if c.dst_format is not c.src_format:
                convert_file(c.src, c.src_format, c.dst, c.dst_format, progress=progress,
                             cancel=cancel, dst_fd=fd)
            elif expected is not None:
                _, digest = diskcopy.copy_and_hash(c.src, c.dst, progress=progress,
                                                   cancel=cancel, book=self.store, dst_fd=fd)
                if digest != expected:
                    raise ValidationFailed([checksum_mismatch(c.rel)], summary=(
                        f"The export directory {str(pkg.directory)!r} failed validation"))
            else:
                diskcopy.copy_file(c.src, c.dst, progress=progress, cancel=cancel, dst_fd=fd)
        return run

    def _copy(self, ctx: OpContext, pkg: ExportPackage, copies: list[Copy],
              phases: PhaseProgress) -> None:
        """Copy (or convert) every disk. The export's disk files were left out of read_export's
        checksum pass: one copied unchanged is hashed while it is copied, every other one
        (converted, or not used because SourceResourcePaths named another file) before."""
        expected = listed_checksums(pkg, sorted({d.file for d in pkg.config.disks if d.file}))
        hashed = {c.rel for c in copies if c.rel and c.dst_format is c.src_format}
        first = {rel: digest for rel, digest in expected.items() if rel not in hashed}
        pre = sum(diskcopy.data_bytes(str(pkg.directory / rel)) for rel in first)
        sizes = [diskcopy.data_bytes(c.src) for c in copies]
        on_copy = phases.phase("copy", pre + sum(sizes))
        verify_checksums(pkg, first, progress=on_copy, cancel=ctx.cancel_event, book=self.store)
        fds: list[int] = []
        try:
            # Each target is created exclusively in this thread (the copies may run in
            # parallel), relative to a handle of its folder opened without following links;
            # the copy then writes into that very file, whatever happens to the path meanwhile.
            for c in copies:
                with files.open_target_dir(ctx, Path(c.dst).parent, self.roots.roots) as d:
                    fds.append(files.create_file(ctx, d, Path(c.dst).name))
            tasks = [CopyTask(c.src, c.dst, self._copier(
                pkg, c, expected.get(c.rel) if c.rel in hashed else None, fd))
                for c, fd in zip(copies, fds, strict=True)]
            run_lanes(tasks, progress=offset(on_copy, pre), cancel=ctx.cancel_event)
            for c, fd in zip(copies, fds, strict=True):  # register what was written
                files.check_in_place(c.dst, self.roots.roots, fd)
        finally:
            for fd in fds:
                os.close(fd)
        phases.done("copy")
