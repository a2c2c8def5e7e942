"""Long qemu-img edits of existing images (convert into a new file, commit, rebase) and floppies.

The building blocks of the image service's edit methods (``vsms.operations.vhd_edit`` and
``vhd_chain``), kept generic: every call names each format (``-f``, ``-O``, ``-F``) so qemu-img
never probes, writes only into a file the caller created and holds open (``/proc/self/fd/N``)
or into the image it was asked to change, reports its ``-p`` progress as 0..100 through a
callback and stops qemu-img (SIGTERM, then SIGKILL) when ``cancel`` is set. The process runner
and the translation of qemu-img's stderr are those of ``vsms.disks.convert``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Callable

from vsms.disks import convert as _conv
from vsms.disks.api import translate_oserror
from vsms.disks.qemuimg import LABEL, as_format, stderr_summary
from vsms.errors import SystemNotAvailable
from vsms.model.vm import ImageFormat

Percent = Callable[[int], None]
"""Called with the percentage done (0..100, monotonic)."""

FLOPPY_SIZE = 1_474_560  # a 3.5" 1.44 MB diskette: 2880 sectors of 512 bytes
MKFS_FAT = "mkfs.fat"
_SLOW_BYTES_PER_SECOND = 16 * 1024 * 1024


def _timeout(size: int) -> float:
    return 120.0 + size / _SLOW_BYTES_PER_SECOND


def _run(args: list[str], what: str, size: int, progress: Percent | None,
         cancel: threading.Event | None, pass_fds: tuple[int, ...] = ()) -> tuple[int, bytes]:
    counter = _conv._Progress(progress, 100)
    code, stderr = _conv._run_convert(args, counter, cancel, _timeout(size), what, pass_fds)
    if code == 0:
        counter.finish()
    return code, stderr


def subformat_options(fmt: ImageFormat, *, fixed: bool) -> list[str]:
    """The ``-o`` creation options of a ``fmt`` image: VHD keeps its exact size
    (``force_size=on``); VHD and VHDX name ``subformat``; qcow2 and raw take none."""
    kind = "fixed" if fixed else "dynamic"
    if fmt is ImageFormat.VHD:
        return ["-o", f"subformat={kind},force_size=on"]
    if fmt is ImageFormat.VHDX:
        return ["-o", f"subformat={kind}"]
    return []


def convert_into(src: str, src_fmt: ImageFormat, dst_fd: int, dst_fmt: ImageFormat, *,
                 fixed: bool = False, existing: bool = False, size: int = 0,
                 progress: Percent | None = None, cancel: threading.Event | None = None,
                 dst_name: str = "", pass_fds: tuple[int, ...] = ()) -> None:
    """Copy the guest contents of ``src`` (``src_fmt``; a qcow2 overlay is read through its
    chain) into the file open as ``dst_fd``, as ``dst_fmt``: ``qemu-img convert -p -f -O``.

    ``existing`` False: qemu-img creates the image in that (empty) file, fixed or dynamic;
    zeroed areas of the source are left unallocated (that is what compaction relies on).
    ``existing`` True: the file already holds an empty ``dst_fmt`` image (e.g. larger, for an
    expansion) and only the data is written (``-n``). ``size`` is the data size for the
    deadline; ``pass_fds`` are folder handles a ``/proc/self/fd/N/name`` source goes through.
    Errors raise the vsms error ``vsms.disks.convert`` gives qemu-img's stderr; the
    partly written file is left to the caller's undo step. The file is fsynced on success.
    """
    src_fmt, dst_fmt = as_format(src_fmt), as_format(dst_fmt)
    target = f"/proc/self/fd/{dst_fd}"
    args = ["convert", "-p", "-f", src_fmt.value, "-O", dst_fmt.value]
    args += ["-n"] if existing else subformat_options(dst_fmt, fixed=fixed)
    what = f"the copy of {src} into {dst_name or 'a new image'}"
    source = src if src.startswith("/proc/self/fd/") else os.path.abspath(src)
    code, stderr = _run([*args, source, target], what, size, progress, cancel,
                        (dst_fd, *pass_fds))
    if code != 0:
        raise _conv._failed(src, src_fmt, dst_name or target, stderr)
    try:
        os.fsync(dst_fd)
    except OSError as exc:
        raise translate_oserror(exc, f"flush {dst_name or 'the new image'} to the disk") from None


def commit(child: str, base: str | None, *, size: int = 0, progress: Percent | None = None,
           cancel: threading.Event | None = None) -> None:
    """Write the data of the qcow2 overlay ``child`` into its backing file (``base`` None) or
    into the ancestor ``base`` (as the chain names it, e.g. its absolute path): ``qemu-img
    commit -p -f qcow2 -d`` / ``-b base``. The child is left intact (``-d``; ``-b`` implies
    it), so a failure or a cancellation part-way changes what the child shows in no way."""
    args = ["commit", "-p", "-f", "qcow2"]
    args += ["-d"] if base is None else ["-b", base]
    what = f"the merge of {child} into {base or 'its parent'}"
    code, stderr = _run([*args, os.path.abspath(child)], what, size, progress, cancel)
    if code != 0:
        raise _conv._failed(child, ImageFormat.QCOW2, base or "its parent", stderr)


def rebase_unsafe(child: str, parent: str, parent_fmt: ImageFormat, *,
                  pass_fds: tuple[int, ...] = ()) -> None:
    """Make the qcow2 overlay ``child`` name ``parent`` (absolute path, of ``parent_fmt``) as
    its backing file without reading either: ``qemu-img rebase -u -f qcow2 -b -F``. ``child``
    may be a ``/proc/self/fd/N/name`` path of a folder handle given in ``pass_fds``."""
    parent_fmt = as_format(parent_fmt)
    args = ["rebase", "-u", "-f", "qcow2", "-b", parent, "-F", parent_fmt.value, child]
    what = f"the reconnection of {child} to {parent}"
    code, stderr = _run(args, what, 0, None, None, pass_fds)
    if code != 0:
        err = stderr_summary(stderr.decode("utf-8", "replace"))
        raise SystemNotAvailable(f"qemu-img failed to make {parent} ({LABEL[parent_fmt]}) the "
                                 f"parent of {child}: {err}")


def mkfs_fat() -> str | None:
    """The path of ``mkfs.fat`` (also looked for in /usr/sbin and /sbin), or None."""
    return shutil.which(MKFS_FAT) or next(
        (p for p in (f"/usr/sbin/{MKFS_FAT}", f"/sbin/{MKFS_FAT}") if os.access(p, os.X_OK)), None)


def format_floppy(fd: int, label: str = "") -> bool:
    """Make the empty file open as ``fd`` a 1.44 MB diskette image: FAT12 formatted by
    ``mkfs.fat`` (dosfstools) when it is installed, else all zeros (unformatted, as a new
    blank diskette). Returns whether it was formatted."""
    try:
        os.ftruncate(fd, FLOPPY_SIZE)
    except OSError as exc:
        raise translate_oserror(exc, "size the new floppy disk image") from None
    tool = mkfs_fat()
    if tool is None:
        return False
    args = [tool, "-F", "12"] + (["-n", label[:11]] if label else []) + [f"/proc/self/fd/{fd}"]
    try:
        result = subprocess.run(args, capture_output=True, text=True, errors="replace",
                                timeout=60, stdin=subprocess.DEVNULL, pass_fds=(fd,), check=False,
                                env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SystemNotAvailable(f"{MKFS_FAT} could not format the floppy image: {exc}") from None
    if result.returncode != 0:
        raise SystemNotAvailable(f"{MKFS_FAT} failed to format the floppy image: "
                                 f"{stderr_summary(result.stderr)}")
    return True
