"""Writing an export: config.xml, the .exp file and, last, manifest.sha256.

Every file goes to a temporary name in the same directory, is fsynced, renamed into place, and the
directory is fsynced, so a crash leaves either no file or a complete one (plus, at worst, a stray
``.<name>.*.tmp`` that the reader reports as not listed in the manifest).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vsms.disks.api import ProgressFn
from vsms.errors import InvalidParameter, OperationFailed
from vsms.exportdir.config import config_problems, config_to_xml
from vsms.exportdir.expfile import exp_to_xml, instance_problems
from vsms.exportdir.layout import (
    CONFIG,
    EXP_SUFFIX,
    MANIFEST,
    SNAPSHOTS_DIR,
    VHD_DIR,
    VMS_DIR,
    ExportConfig,
    exp_name,
    is_guid,
)
from vsms.exportdir.manifest import format_manifest, hash_files
from vsms.exportdir.tree import rel_path_problem, scan_tree

_HEX64 = re.compile(r"[0-9A-Fa-f]{64}")


def _fail(action: str, path: Path, exc: OSError) -> OperationFailed:
    return OperationFailed(f"cannot {action} {path}: {exc.strerror or exc}: check that the export "
                           "directory exists, is writable by the service and has free space")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (mode 0644) through a temporary file, fsync, rename."""
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), 0o644)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = ""
        _fsync_dir(path.parent)
    except OSError as exc:
        raise _fail("write", path, exc) from exc
    finally:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def make_skeleton(directory: Path) -> None:
    """Create the sub-directories of an export under the existing ``directory`` (idempotent)."""
    for sub in (VMS_DIR, VHD_DIR, SNAPSHOTS_DIR):
        try:
            (directory / sub).mkdir(mode=0o755, exist_ok=True)
        except OSError as exc:
            raise _fail("create", directory / sub, exc) from exc


def write_config(directory: Path, cfg: ExportConfig) -> None:
    """Write ``directory/config.xml`` for ``cfg``; InvalidParameter lists every bad value."""
    problems = config_problems(cfg)
    if problems:
        raise InvalidParameter(f"cannot write {CONFIG}: the export configuration "
                               + "; it ".join(problems) + ": this is a bug in the caller")
    write_atomic(directory / CONFIG, config_to_xml(cfg))


def write_exp(directory: Path, guid: str, instances: list[Any]) -> Path:
    """Write ``directory/Virtual Machines/<GUID>.exp`` holding ``instances`` and return its path.

    The instances must be the settings instances of VM ``guid`` (VSSD, VSGSD, RASDs, memory,
    processor), exactly what the reader accepts; another VM's .exp in the folder is refused.
    """
    if not is_guid(guid):
        raise InvalidParameter(f"cannot write the .exp file: {guid!r} is not a GUID")
    problems = instance_problems(instances, guid.upper()) if instances else ["holds no instances"]
    if problems:
        raise InvalidParameter("cannot write the .exp file: the instance list "
                               + "; it ".join(problems))
    vms = directory / VMS_DIR
    target = vms / exp_name(guid)
    try:
        vms.mkdir(mode=0o755, exist_ok=True)
        others = [p.name for p in vms.iterdir()
                  if p.name.endswith(EXP_SUFFIX) and p.name != target.name]
    except OSError as exc:
        raise _fail("create", vms, exc) from exc
    if others:
        raise InvalidParameter(f"cannot write {target}: {vms} already holds {sorted(others)}: "
                               "export each virtual machine into its own directory")
    write_atomic(target, exp_to_xml(instances))
    return target


def write_manifest(directory: Path, *, progress: ProgressFn | None = None,
                   cancel: threading.Event | None = None,
                   known: Mapping[str, str] | None = None) -> None:
    """Hash every regular file under ``directory`` and write ``manifest.sha256`` last.

    ``known`` maps relative paths to the hex SHA-256 the caller computed while it wrote those
    files (``vsms.disks.copy.copy_and_hash``), so big disks are not read a second time; every
    other file is hashed here. ``progress`` gets the bytes of data read so far (holes excluded);
    setting ``cancel`` raises JobCancelled before the manifest exists. Links, devices,
    unsuitable names and a ``known`` entry that is not a file of the tree are refused with
    InvalidParameter.
    """
    scan = scan_tree(directory)
    rels = sorted(rel for rel in scan.files if rel != MANIFEST)
    given = dict(known or {})
    problems = list(scan.problems)
    problems += [f"{rel!r} {why}" for rel in rels if (why := rel_path_problem(rel)) is not None]
    problems += [f"the checksum given for {rel!r} names no file of the export"
                 for rel in sorted(given.keys() - set(rels))]
    problems += [f"the checksum given for {rel!r} is not a SHA-256 in hex"
                 for rel, digest in sorted(given.items()) if not _HEX64.fullmatch(digest)]
    if problems:
        raise InvalidParameter(f"cannot write {directory / MANIFEST}: " + "; ".join(problems))
    digests = hash_files(directory, [rel for rel in rels if rel not in given],
                         progress=progress, cancel=cancel)
    digests.update({rel: digest.lower() for rel, digest in given.items()})
    write_atomic(directory / MANIFEST, format_manifest(digests))
