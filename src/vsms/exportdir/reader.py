"""Reading an export: validate everything first, report every problem at once.

read_export never changes the directory. Quick checks on the directory itself raise
InvalidParameter alone; everything inside it is checked in full and the problems are raised
together as one ValidationFailed.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from vsms.disks.api import ProgressFn
from vsms.disks.digests import DigestBook
from vsms.errors import InvalidParameter, JobCancelled, ValidationFailed, VsmsError
from vsms.exportdir import snapreader
from vsms.exportdir.config import disk_file_clause, parse_config
from vsms.exportdir.expfile import instance_problems, parse_exp
from vsms.exportdir.layout import (
    CONFIG,
    CONFIG_MAX_BYTES,
    EXP_MAX_BYTES,
    EXP_SUFFIX,
    MANIFEST,
    MANIFEST_MAX_BYTES,
    VMS_DIR,
    ExportConfig,
    ExportPackage,
    exp_name,
    is_guid,
    q,
)
from vsms.exportdir.manifest import hash_files, parse_manifest
from vsms.exportdir.tree import (
    TreeScan,
    mounts_inside,
    rel_path_problem,
    resolves_inside,
    scan_tree,
)
from vsms.model.vm import ImageFormat

__all__ = [
    "CheckFn",
    "ExportPackage",
    "ProbeFn",
    "check_import_directory",
    "checksum_mismatch",
    "listed_checksums",
    "looks_like_export_root",
    "read_export",
    "verify_checksums",
]

MAX_PROBLEMS = 50
"""At most this many problems are listed; the rest are counted."""
ProbeFn = Callable[[str], ImageFormat]
CheckFn = Callable[[str, ImageFormat], str | None]
"""Why the file is not an intact image of the format (opened as that format only), or None."""
_AGAIN = "restore it from the original export or export the virtual machine again"


def looks_like_export_root(directory: Path) -> list[str]:
    """Sub-directories of ``directory`` that look like exported VMs (hold config.xml or
    'Virtual Machines'), as full paths, sorted; [] when there are none or it cannot be read."""
    found: list[str] = []
    try:
        with os.scandir(directory) as it:
            subs = sorted(e.name for e in it if e.is_dir(follow_symlinks=False))
    except OSError:
        return []
    for name in subs:
        sub = Path(directory) / name
        if (sub / CONFIG).is_file() or (sub / VMS_DIR).is_dir():
            found.append(str(sub))
    return found


def check_import_directory(directory: Path, shown: str = "") -> Path:
    """The one check of an import directory (every import method, read_export, the CLI):
    it exists (a dangling symbolic link counts as missing), is a directory, and is not an
    export root (a folder without config.xml whose subdirectories are exports). ``shown`` is
    how the messages name it (default: the path). Returns the resolved path; InvalidParameter
    otherwise."""
    where = shown or f"The import directory {str(directory)!r}"
    if not os.path.exists(directory):
        raise InvalidParameter(f"{where} does not exist: pass the per-VM subdirectory that "
                               "ExportVirtualSystem created")
    if not os.path.isdir(directory):
        raise InvalidParameter(f"{where} is not a directory: pass the per-VM subdirectory that "
                               "ExportVirtualSystem created")
    if not os.path.lexists(Path(directory) / CONFIG):
        subs = looks_like_export_root(directory)
        if subs:
            listed = ", ".join(repr(s) for s in subs)
            raise InvalidParameter(f"{where} is the export root, not an exported virtual machine: "
                                   f"pass one of its subdirectories: {listed}")
    return Path(os.path.realpath(directory))


def _read_file(root: Path, rel: str, limit: int, problems: list[str]) -> bytes | None:
    """Bytes of the regular file ``root/rel`` opened without following any link, or None."""
    fds: list[int] = []
    try:
        fds.append(os.open(root, os.O_RDONLY | os.O_DIRECTORY))
        parts = rel.split("/")
        for part in parts[:-1]:
            fds.append(os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fds[-1]))
        fds.append(os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY,
                           dir_fd=fds[-1]))
        st = os.fstat(fds[-1])
        if not stat.S_ISREG(st.st_mode):
            problems.append(f"{q(rel)} is not a regular file: {_AGAIN}")
            return None
        if st.st_size > limit:
            problems.append(f"{q(rel)} is {st.st_size} bytes long, more than the limit of {limit} "
                            f"bytes: {_AGAIN}")
            return None
        with os.fdopen(fds.pop(), "rb") as fh:
            return fh.read(limit + 1)
    except OSError as exc:
        problems.append(f"{q(rel)} cannot be read ({exc.strerror}): make it readable by the "
                        "service, or " + _AGAIN)
        return None
    finally:
        for fd in fds:
            os.close(fd)


def _config(root: Path, scan: TreeScan, problems: list[str]) -> ExportConfig | None:
    if CONFIG not in scan.files:
        problems.append(f"{CONFIG} is missing or is not a regular file: pass the directory that "
                        "the export created for one virtual machine, or export it again")
        return None
    data = _read_file(root, CONFIG, CONFIG_MAX_BYTES, problems)
    if data is None:
        return None
    cfg, found = parse_config(data)
    problems += found
    return cfg


def _exp(root: Path, scan: TreeScan, cfg: ExportConfig | None,
         problems: list[str]) -> tuple[Path | None, list[Any]]:
    if VMS_DIR not in scan.dirs:
        problems.append(f"the directory {VMS_DIR!r} is missing: it holds the virtual machine's "
                        "settings; export the virtual machine again")
        return None, []
    exps = sorted(rel for rel in scan.files
                  if rel.startswith(VMS_DIR + "/") and rel.count("/") == 1
                  and rel.endswith(EXP_SUFFIX))
    if not exps:
        problems.append(f"{VMS_DIR!r} holds no {EXP_SUFFIX} file: export the virtual machine "
                        "again")
        return None, []
    if len(exps) > 1:
        problems.append(f"{VMS_DIR!r} holds several {EXP_SUFFIX} files ({', '.join(exps)}): an "
                        "export holds one virtual machine; remove the extra files or export again")
        return None, []
    rel = exps[0]
    guid = cfg.vm_guid if cfg is not None and is_guid(cfg.vm_guid) else ""
    stem = rel.split("/")[1][: -len(EXP_SUFFIX)]
    if guid and rel.split("/")[1] != exp_name(guid):
        problems.append(f"{q(rel)} does not match the virtual machine GUID {guid} in {CONFIG}: it "
                        f"should be named {exp_name(guid)!r}; {_AGAIN}")
    elif not guid and is_guid(stem):
        guid = stem.upper()
    data = _read_file(root, rel, EXP_MAX_BYTES, problems)
    if data is None:
        return None, []
    instances, clauses = parse_exp(data)
    if guid and instances:
        clauses += instance_problems(instances, guid)
    problems += [f"{q(rel)} {clause}: {_AGAIN}" for clause in clauses]
    return root / rel, instances


def checksum_mismatch(rel: str) -> str:
    """The sentence that reports a file whose content does not match the manifest."""
    return (f"{q(rel)} does not match its checksum in {MANIFEST}: the file is damaged or was "
            "changed; copy it again from the original export")


def _manifest(root: Path, scan: TreeScan, verify: bool, skip: Collection[str],
              progress: ProgressFn | None, cancel: threading.Event | None,
              problems: list[str], book: DigestBook | None) -> set[str]:
    """Check the manifest; return the files already reported as damaged (checksum). The
    checksums of the files in ``skip`` are left to the caller."""
    if MANIFEST not in scan.files:
        problems.append(f"{MANIFEST} is missing or is not a regular file: the export is "
                        "incomplete (the manifest is written last); export the virtual machine "
                        "again")
        return set()
    data = _read_file(root, MANIFEST, MANIFEST_MAX_BYTES, problems)
    if data is None:
        return set()
    entries, found = parse_manifest(data)
    problems += found
    present: list[str] = []
    for rel in entries:
        if not resolves_inside(root, rel):
            problems.append(f"{MANIFEST} names {q(rel)}, which resolves outside the export "
                            f"directory: {_AGAIN}")
        elif rel not in scan.files:
            problems.append(f"{q(rel)} is listed in {MANIFEST} but is missing: copy it from the "
                            "original export, or export the virtual machine again")
        else:
            present.append(rel)
    for rel in sorted(scan.files):
        if rel != MANIFEST and rel not in entries:
            problems.append(f"{q(rel)} is not listed in {MANIFEST}: remove it, or export the "
                            "virtual machine again if it belongs to the export")
    if not verify:
        return set()
    hashed = [rel for rel in present if rel not in skip]
    digests = hash_files(root, hashed, progress=progress, cancel=cancel, problems=problems,
                         book=book)
    damaged = {rel for rel in hashed if digests.get(rel) != entries[rel]}
    problems += [checksum_mismatch(rel) for rel, digest in digests.items()
                 if digest != entries[rel]]
    return damaged


def _disks(root: Path, scan: TreeScan, cfg: ExportConfig, probe: ProbeFn, check: CheckFn | None,
           damaged: set[str], cancel: threading.Event | None, problems: list[str]) -> None:
    for disk in cfg.disks:
        if not disk.file or disk_file_clause(disk, cfg.with_storage) is not None:
            continue  # config problems were reported while parsing
        what = f"the file {q(disk.file)} of disk {q(disk.dev_id)} in {CONFIG}"
        if not resolves_inside(root, disk.file):
            problems.append(f"{what} resolves outside the export directory: {_AGAIN}")
            continue
        if disk.file not in scan.files:
            problems.append(f"{what} is missing: copy it from the original export, or export "
                            "the virtual machine again")
            continue
        if cancel is not None and cancel.is_set():
            raise JobCancelled("reading the export was cancelled")
        try:
            found = probe(str(root / disk.file))
        except JobCancelled:
            raise
        except VsmsError as exc:
            problems.append(f"{what} cannot be examined ({exc}): {_AGAIN}")
            continue
        if found != disk.format:
            problems.append(f"{what} is a {found.value} image, not {disk.format.value} as "
                            f"{CONFIG} says: {_AGAIN}")
            continue
        _references(root, scan, disk.file, what, problems)
        if check is None or disk.file in damaged:
            continue  # a quick read, or its checksum already says it is damaged
        try:
            damage = check(str(root / disk.file), disk.format)
        except JobCancelled:
            raise
        except VsmsError as exc:
            damage = str(exc)
        if damage:
            problems.append(f"{what} is not an intact {disk.format.value} image ({damage}): "
                            f"{_AGAIN}")


def _references(root: Path, scan: TreeScan, rel: str, what: str, problems: list[str]) -> None:
    """A qcow2 disk may name a backing file only inside the export, and no external data file."""
    from vsms.disks.qemuimg import referenced_files  # imported late, like the probe

    try:
        refs = referenced_files(str(root / rel))
    except VsmsError as exc:
        problems.append(f"{what} cannot be examined ({exc}): {_AGAIN}")
        return
    for kind, name in refs:
        folder = rel.rsplit("/", 1)[0]
        target = f"{folder}/{name}"
        if kind != "backing file" or not name:
            problems.append(f"{what} needs the {kind} {q(name)}: an exported disk must be a "
                            f"standalone image; convert it with qemu-img convert and {_AGAIN}")
        elif (name.startswith("/") or ":" in name or rel_path_problem(target) is not None
              or not resolves_inside(root, target) or target not in scan.files):
            problems.append(f"{what} names the backing file {q(name)}, which is not a file of "
                            f"this export: an exported disk may only build on files inside the "
                            f"export directory; {_AGAIN}")


def _default_probe(path: str) -> ImageFormat:
    from vsms.disks.qemuimg import probe_format  # imported late: disks may need qemu-img

    return probe_format(path)


def _default_check(path: str, fmt: ImageFormat) -> str | None:
    """Headers and ``qemu-img check -f fmt`` (which first opens the image as QEMU would, also
    for formats it cannot check); a fixed VHD must be exactly as long as its footer says."""
    from vsms.cim.enums import VirtualHardDiskType
    from vsms.disks import qemuimg, vhd

    problem = qemuimg.check(path, fmt)
    if problem:
        return problem
    if fmt is ImageFormat.VHD:
        headers = vhd.read_vhd(path)
        data = os.stat(path).st_size - 512
        if headers.type is VirtualHardDiskType.FIXED and headers.virtual_size != data:
            return (f"its footer says the fixed disk holds {headers.virtual_size} bytes but the "
                    f"file holds {data}")
    return None


def read_export(directory: Path, *, verify: bool = True, progress: ProgressFn | None = None,
                cancel: threading.Event | None = None,
                probe: ProbeFn | None = None, check: CheckFn | None = None,
                defer_disks: bool = False, book: DigestBook | None = None) -> ExportPackage:
    """Validate the export in ``directory`` (the per-VM subdirectory) and return its contents.

    Quick checks raise InvalidParameter: the directory does not exist, is not a directory, or is
    an export root. Everything else is checked in full and reported in one ValidationFailed whose
    ``problems`` are sentences naming the file and the fix. ``verify`` recomputes every checksum
    (``progress`` gets the bytes of data read so far, holes excluded; ``cancel`` raises
    JobCancelled, also before each disk probe); with ``defer_disks`` the checksums of the disk
    files config.xml names are not computed (the files must still be listed and present): the
    caller compares them with ``listed_checksums`` while it reads them anyway, e.g. while
    copying them (``vsms.disks.copy.copy_and_hash``). ``probe`` returns
    a disk file's format (default: vsms.disks.qemuimg.probe_format); with ``verify``, when
    nothing else is wrong, ``check`` tells why a disk of the right format whose checksum matched
    is not intact (default: its headers and ``qemu-img check -f``). A qcow2 disk may name
    a backing file only inside the export and no external data file; hard links and mount
    points inside the export are refused. Nothing is modified. ``book`` (see
    ``vsms.disks.digests``) spares hashing the files this host hashed before and that did not
    change since.
    """
    root = check_import_directory(directory)
    problems: list[str] = []
    scan = scan_tree(root)
    problems += scan.problems
    problems += [f"{q(rel)} is a mount point: an export must lie on one file system (a bind "
                 "mount can show any directory of the host); unmount it" for rel in
                 mounts_inside(root)]
    cfg = _config(root, scan, problems)
    exp_path, instances = _exp(root, scan, cfg, problems)
    skip = {d.file for d in cfg.disks if d.file} if defer_disks and cfg is not None else set()
    damaged = _manifest(root, scan, verify, skip, progress, cancel, problems, book)
    snapshots: dict[str, list[Any]] = {}
    if cfg is not None and (cfg.snapshots or cfg.images):
        snapshots = snapreader.read_tree(root, scan, cfg, _read_file, probe or _default_probe,
                                         problems)
    if cfg is not None:
        deep = verify and not problems  # the image checks are the slowest step: only for an
        _disks(root, scan, cfg, probe or _default_probe,  # export that is otherwise valid
               (check or _default_check) if deep else None, damaged, cancel, problems)
    if len(problems) > MAX_PROBLEMS:  # keep the report (a job's ErrorDescription) readable
        more = len(problems) - MAX_PROBLEMS
        problems = [*problems[:MAX_PROBLEMS], f"{more} more problem(s) of the same kinds"]
    if problems or cfg is None or exp_path is None:
        raise ValidationFailed(problems or [f"{root} is not a complete export: {_AGAIN}"],
                               summary=f"The export directory {str(root)!r} failed validation")
    return ExportPackage(root, cfg, instances, exp_path, snapshots)


def listed_checksums(pkg: ExportPackage, rels: Collection[str]) -> dict[str, str]:
    """The SHA-256 that manifest.sha256 lists for each of ``rels`` (relative paths), read again
    from ``pkg.directory``; ValidationFailed when the manifest no longer lists one of them."""
    problems: list[str] = []
    data = _read_file(pkg.directory, MANIFEST, MANIFEST_MAX_BYTES, problems)
    entries, found = parse_manifest(data) if data is not None else ({}, [])
    problems += found
    if data is not None:
        problems += [f"{q(rel)} is not listed in {MANIFEST} any more: {_AGAIN}"
                     for rel in sorted(rels) if rel not in entries]
    if problems:
        raise ValidationFailed(problems, summary=f"The export directory {str(pkg.directory)!r} "
                                                 "changed while it was being imported")
    return {rel: entries[rel] for rel in rels}


def verify_checksums(pkg: ExportPackage, expected: Mapping[str, str], *,
                     progress: ProgressFn | None = None,
                     cancel: threading.Event | None = None,
                     book: DigestBook | None = None) -> None:
    """Hash each file of ``expected`` (relative path -> hex SHA-256) under ``pkg.directory``
    (``book`` as in ``read_export``); one ValidationFailed lists every file that differs or
    cannot be read."""
    problems: list[str] = []
    digests = hash_files(pkg.directory, sorted(expected), progress=progress, cancel=cancel,
                         problems=problems, book=book)
    problems += [checksum_mismatch(rel) for rel, digest in digests.items()
                 if digest != expected[rel].lower()]
    if problems:
        raise ValidationFailed(problems, summary=f"The export directory {str(pkg.directory)!r} "
                                                 "failed validation")
