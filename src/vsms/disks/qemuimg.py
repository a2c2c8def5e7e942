"""Disk images through qemu-img, always with an explicit format, never letting qemu-img guess.

The format of a file is decided from its own bytes (``probe_format``); every qemu-img call names
it with ``-f``. Paths are handed to qemu-img in absolute form, so a name such as ``nbd:x`` or
``json:{...}`` can never be read as a protocol. QEMU cannot open VHD or VHDX differencing disks,
so their details come from the headers alone (``vhd.py``), and a differencing disk made here is
a qcow2 overlay.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import subprocess
from typing import Any

from vsms.cim.enums import VirtualHardDiskType
from vsms.disks import vhd
from vsms.disks.api import ImageInfo, require_file, translate_oserror
from vsms.errors import InvalidParameter, NotSupported, SystemNotAvailable, VsmsError
from vsms.model.vm import ImageFormat

QEMU_IMG = "qemu-img"
INFO_TIMEOUT = 60.0
CREATE_TIMEOUT = 60.0
DEFAULT_DYNAMIC_SIZE = 3 * 1024 * 1024  # Hyper-V: MaxInternalSize 0 makes a 3 MB dynamic disk
_SECTOR = 512
_GIB = 1024**3
_MAX_SIZE = {ImageFormat.VHD: 2040 * _GIB, ImageFormat.VHDX: 64 * 1024 * _GIB}
_NO_CHECK = 63  # qemu-img check: "This image format does not support checks"
_SLOW_BYTES_PER_SECOND = 16 * 1024 * 1024  # pessimistic read rate for scaled timeouts
_OVERLAY_REFUSED = (".vhd", ".avhd", ".vhdx", ".avhdx")
_QCOW2_HEAD_READ = 64 * 1024  # the header, its extensions and the backing name: first cluster
_QCOW2_NAME_MAX = 1023  # QEMU refuses longer backing file names
_QCOW2_MAX_EXTENSIONS = 64
_QCOW2_EXT_DATA_FILE = 0x44415441  # header extension "DATA": external data file name
_QCOW2_INCOMPAT_DATA_FILE = 1 << 2
LABEL = {ImageFormat.VHD: "VHD", ImageFormat.VHDX: "VHDX", ImageFormat.QCOW2: "qcow2",
          ImageFormat.RAW: "raw"}


def as_format(fmt: ImageFormat | str) -> ImageFormat:
    """``fmt`` as an ImageFormat; an unknown name is InvalidParameter listing the known ones."""
    try:
        return ImageFormat(fmt)
    except ValueError:
        names = ", ".join(f.value for f in ImageFormat)
        raise InvalidParameter(f"unknown disk image format {fmt!r}: use one of {names}") from None


def stderr_summary(text: str) -> str:
    """qemu-img's error output as one line (at most 500 characters)."""
    lines = [ln.removeprefix("qemu-img: ").strip() for ln in text.splitlines() if ln.strip()]
    return "; ".join(lines)[:500] or "no error message"


def _run(args: list[str], timeout: float, what: str,
         pass_fds: tuple[int, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run qemu-img with a deadline; a missing binary, a timeout or an OS error -> vsms error."""
    try:
        return subprocess.run([QEMU_IMG, *args], capture_output=True, text=True, check=False,
                              errors="replace", timeout=timeout, stdin=subprocess.DEVNULL,
                              env={**os.environ, "LC_ALL": "C"}, pass_fds=pass_fds)
    except FileNotFoundError:
        raise SystemNotAvailable(f"cannot {what}: {QEMU_IMG} is not installed or not on PATH; "
                                 "install the qemu-utils package") from None
    except subprocess.TimeoutExpired:
        raise SystemNotAvailable(f"cannot {what}: qemu-img did not finish within {timeout:.0f} s "
                                 "(it was stopped); the storage may be hung or overloaded, "
                                 "try again later") from None
    except OSError as exc:
        raise translate_oserror(exc, f"run {QEMU_IMG} to {what}") from None


def _scaled_timeout(*sizes: int) -> float:
    return 120.0 + sum(sizes) / _SLOW_BYTES_PER_SECOND


def probe_format(path: str) -> ImageFormat:
    """The format of ``path`` from its magic: ``vhdxfile`` or ``QFI\\xfb`` at offset 0, a VHD
    ``conectix`` footer in the last 512 bytes (or its copy at offset 0); anything else is raw.

    Raises FileNotFound for a missing file and InvalidParameter for anything but a regular file.
    """
    st = require_file(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            head = os.pread(fd, 8, 0)
            tail = os.pread(fd, 8, st.st_size - _SECTOR) if st.st_size >= _SECTOR else b""
        finally:
            os.close(fd)
    except OSError as exc:
        raise translate_oserror(exc, f"read the disk image {path}") from None
    if head == vhd.VHDX_SIGNATURE:
        return ImageFormat.VHDX
    if head[:4] == vhd.QCOW2_MAGIC:
        return ImageFormat.QCOW2
    if vhd.VHD_COOKIE in (head, tail):
        return ImageFormat.VHD
    return ImageFormat.RAW


def referenced_files(path: str) -> list[tuple[str, str]]:
    """The other files QEMU would open for the image at ``path``, as recorded in its header:
    ``("backing file", name)`` and ``("external data file", name)`` pairs of a qcow2 image
    (name exactly as written, possibly relative to the image's folder or a protocol such as
    ``json:{...}``; an external data file the header requires but does not name is ``""``).
    [] for every other format: QEMU follows no VHD or VHDX parent locator.

    Only the first cluster is read, with every offset bounds-checked. Raises FileNotFound /
    InvalidParameter like ``probe_format``, and InvalidParameter for a damaged qcow2 header.
    """
    if probe_format(path) is not ImageFormat.QCOW2:
        return []
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            head = os.pread(fd, _QCOW2_HEAD_READ, 0)
        finally:
            os.close(fd)
    except OSError as exc:
        raise translate_oserror(exc, f"read the qcow2 header of {path}") from None

    def damaged(why: str) -> InvalidParameter:
        return InvalidParameter(f"{path} is not a valid qcow2 image: {why}; restore the file "
                                "from a good copy")

    if len(head) < 72:
        raise damaged("the header is truncated")
    version, backing_offset, backing_size = struct.unpack_from(">IQI", head, 4)
    found: list[tuple[str, str]] = []
    if backing_offset:
        if backing_size > _QCOW2_NAME_MAX or backing_offset + backing_size > len(head):
            raise damaged("the backing file name lies outside the first cluster")
        name = head[backing_offset:backing_offset + backing_size]
        found.append(("backing file", name.decode("utf-8", "surrogateescape")))
    incompatible, ext_at = 0, 72
    if version >= 3:
        if len(head) < 104:
            raise damaged("the version 3 header is truncated")
        (incompatible,) = struct.unpack_from(">Q", head, 72)
        (ext_at,) = struct.unpack_from(">I", head, 100)
    data_file: str | None = None
    for _ in range(_QCOW2_MAX_EXTENSIONS):
        if ext_at + 8 > len(head):
            break
        kind, length = struct.unpack_from(">II", head, ext_at)
        if kind == 0:
            break
        if ext_at + 8 + length > len(head):
            raise damaged("a header extension lies outside the first cluster")
        if kind == _QCOW2_EXT_DATA_FILE:
            data_file = head[ext_at + 8:ext_at + 8 + length].decode("utf-8", "surrogateescape")
        ext_at += 8 + (length + 7) // 8 * 8
    if data_file is not None or incompatible & _QCOW2_INCOMPAT_DATA_FILE:
        found.append(("external data file", data_file or ""))
    return found


def _require_format(path: str, fmt: ImageFormat) -> None:
    found = probe_format(path)
    if found is not fmt:
        raise InvalidParameter(
            f"{path} holds a {LABEL[found]} image, not {LABEL[fmt]} as named; pass the "
            f"format the file really has ({found.value})")


def _headers(path: str, fmt: ImageFormat) -> vhd.DiskHeaders | None:
    try:
        if fmt is ImageFormat.VHD:
            return vhd.read_vhd(path)
        if fmt is ImageFormat.VHDX:
            return vhd.read_vhdx(path)
    except OSError as exc:
        raise translate_oserror(exc, f"read the headers of {path}") from None
    return None


def _open_failed(action: str, path: str, fmt: ImageFormat, stderr: str) -> VsmsError:
    err = stderr_summary(stderr)
    if "Could not open" in stderr or "invalid" in stderr.lower():
        return InvalidParameter(f"qemu-img cannot {action} {path} as {LABEL[fmt]}: {err}; "
                                f"check that the file is an intact {LABEL[fmt]} image")
    return SystemNotAvailable(f"qemu-img failed to {action} {path}: {err}")


def info(path: str, fmt: ImageFormat) -> ImageInfo:
    """Size, type and parent of the image at ``path``, opened as ``fmt`` (which must match
    ``probe_format``): ``qemu-img info -U -f fmt --output=json`` plus the disk type from the
    VHD footer or VHDX metadata (qcow2 with a backing file is differencing, raw is fixed).

    ``parent_path`` is reported, not checked: callers confine it before trusting it.
    """
    fmt = as_format(fmt)
    st = require_file(path)
    _require_format(path, fmt)
    headers = _headers(path, fmt)
    if headers is not None and headers.type is VirtualHardDiskType.DIFFERENCING:
        return ImageInfo(path, fmt, headers.type, headers.virtual_size, st.st_size,
                         st.st_blocks * 512, headers.parent_path)
    result = _run(["info", "-U", "-f", fmt.value, "--output=json", os.path.abspath(path)],
                  INFO_TIMEOUT, f"inspect {path}")
    if result.returncode != 0:
        raise _open_failed("inspect", path, fmt, result.stderr)
    try:
        data: dict[str, Any] = json.loads(result.stdout)
        virtual_size = int(data["virtual-size"])
    except (ValueError, KeyError, TypeError):
        raise SystemNotAvailable(f"qemu-img info printed no usable JSON for {path}: "
                                 f"{result.stdout[:200]!r}") from None
    parent = ""
    if headers is not None:
        kind = headers.type
    elif fmt is ImageFormat.QCOW2:
        parent = str(data.get("full-backing-filename") or data.get("backing-filename") or "")
        kind = VirtualHardDiskType.DIFFERENCING if parent else VirtualHardDiskType.DYNAMIC
    else:
        kind = VirtualHardDiskType.FIXED
    return ImageInfo(path, fmt, kind, virtual_size, st.st_size, st.st_blocks * 512, parent)


def _checked_size(size: int, fmt: ImageFormat, fixed: bool) -> int:
    if isinstance(size, bool) or not isinstance(size, int):
        raise InvalidParameter(f"disk size {size!r} is not a whole number of bytes")
    if size == 0 and not fixed:
        return DEFAULT_DYNAMIC_SIZE
    if size <= 0 or size % _SECTOR:
        hint = max(_SECTOR, -(-size // _SECTOR) * _SECTOR)
        raise InvalidParameter(f"disk size {size} bytes is not valid: the size must be a "
                               f"positive multiple of 512 bytes (for example {hint})")
    limit = _MAX_SIZE.get(fmt)
    if limit is not None and size > limit:
        raise InvalidParameter(f"disk size {size} bytes is too large for {LABEL[fmt]}: the "
                               f"maximum is {limit} bytes ({limit // _GIB} GiB)")
    return size


def _reserve(path: str) -> None:
    """Create ``path`` empty and exclusively, so qemu-img can never overwrite someone's file."""
    if not isinstance(path, str) or not os.path.isabs(path) or "\x00" in path:
        raise InvalidParameter(f"the new disk path {path!r} is not a fully qualified path: "
                               "pass an absolute path")
    folder = os.path.dirname(path)
    if os.path.lexists(path):
        raise InvalidParameter(f"{path} already exists; a new disk never overwrites a file: "
                               "choose another name or delete the old file first")
    if not os.path.isdir(folder):
        why = "is not a folder" if os.path.lexists(folder) else "does not exist"
        raise InvalidParameter(f"the folder {folder} for the new disk {why}; create the "
                               "folder first or choose another path")
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
    except FileExistsError:
        raise InvalidParameter(f"{path} already exists; a new disk never overwrites a file: "
                               "choose another name or delete the old file first") from None
    except OSError as exc:
        raise translate_oserror(exc, f"create {path}") from None


def _create(path: str, args: list[str], what: str, fd: int | None = None) -> None:
    """qemu-img create ``args``: into the new file ``path``, or (``fd`` given) into the empty
    file the caller created and holds open, named ``/proc/self/fd/N`` in ``args``; then a
    failed creation is left to the caller's undo step."""
    if fd is not None:
        result = _run(["create", "-q", *args], CREATE_TIMEOUT, what, (fd,))
        if result.returncode != 0:
            raise SystemNotAvailable(f"qemu-img failed to {what}: {stderr_summary(result.stderr)}")
        return
    _reserve(path)
    try:
        result = _run(["create", "-q", *args], CREATE_TIMEOUT, what)
        if result.returncode != 0:
            raise SystemNotAvailable(f"qemu-img failed to {what}: {stderr_summary(result.stderr)}")
    except BaseException:
        with contextlib.suppress(OSError):  # the first error is the one to report
            os.unlink(path)
        raise


def create(path: str, size: int, fmt: ImageFormat, *, fixed: bool,
           fd: int | None = None) -> None:
    """Create a new empty disk of exactly ``size`` guest bytes at the absolute ``path``.

    VHD uses ``subformat=dynamic|fixed,force_size=on`` (no CHS rounding), VHDX ``subformat``;
    qcow2 is dynamic only; raw is a sparse file either way (``info`` calls raw fixed).
    ``size`` must be a positive multiple of 512, except that 0 asks for the 3 MB default of a
    dynamic disk (as CreateDynamicVirtualHardDisk does). An existing path is refused, never
    overwritten; so is a missing folder. On failure nothing is left behind. With ``fd`` (an
    empty file the caller created and holds open) the disk is written into that file, handed
    to qemu-img as ``/proc/self/fd/N``; ``path`` then only names it in messages.
    """
    fmt = as_format(fmt)
    if fixed and fmt is ImageFormat.QCOW2:
        raise NotSupported("a fixed-size disk cannot be qcow2: use format vpc, vhdx or raw, "
                           "or create a dynamic qcow2 disk")
    size = _checked_size(size, fmt, fixed)
    args = ["-f", fmt.value]
    subformat = "fixed" if fixed else "dynamic"
    if fmt is ImageFormat.VHD:
        args += ["-o", f"subformat={subformat},force_size=on"]
    elif fmt is ImageFormat.VHDX:
        args += ["-o", f"subformat={subformat}"]
    target = path if fd is None else f"/proc/self/fd/{fd}"
    _create(path, [*args, target, str(size)], f"create the {subformat} {LABEL[fmt]} disk {path}",
            fd)


def create_differencing(path: str, parent: str, parent_fmt: ImageFormat, *,
                        fd: int | None = None) -> None:
    """Create a qcow2 overlay at ``path`` whose backing file is ``parent`` (``-F parent_fmt``).

    QEMU can neither create nor run VHD/VHDX differencing disks, so a child path ending in
    .vhd/.avhd/.vhdx/.avhdx is refused with NotSupported, as is a parent that is itself a
    VHD/VHDX differencing disk. The parent is recorded by its absolute path. ``fd`` is as in
    ``create``.
    """
    parent_fmt = as_format(parent_fmt)
    if isinstance(path, str) and path.lower().endswith(_OVERLAY_REFUSED):
        stem = os.path.splitext(path)[0]
        raise NotSupported(
            f"cannot create the differencing disk {path}: QEMU can neither create nor run "
            "VHD/VHDX differencing disks, so a differencing disk here is a qcow2 overlay; "
            f"use a path ending in .qcow2 (for example {stem}.qcow2)")
    require_file(parent, "parent disk")
    _require_format(parent, parent_fmt)
    headers = _headers(parent, parent_fmt)
    if headers is not None and headers.type is VirtualHardDiskType.DIFFERENCING:
        raise NotSupported(f"the parent {parent} is itself a {LABEL[parent_fmt]} differencing "
                           "disk, which QEMU cannot read; merge it into a full disk first")
    parent_abs = os.path.abspath(parent)
    target = path if fd is None else f"/proc/self/fd/{fd}"
    _create(path, ["-f", "qcow2", "-b", parent_abs, "-F", parent_fmt.value, target],
            f"create the differencing disk {path} on {parent}", fd)


def compare(a: str, fa: ImageFormat, b: str, fb: ImageFormat) -> bool:
    """True when the guest-visible contents of ``a`` and ``b`` are identical.

    Images of different virtual sizes are different (qemu-img would only warn). Errors raise
    InvalidParameter (an image cannot be opened as named) or SystemNotAvailable (with stderr).
    """
    fa, fb = as_format(fa), as_format(fb)
    ia, ib = info(a, fa), info(b, fb)
    for i in (ia, ib):
        if i.type is VirtualHardDiskType.DIFFERENCING and i.format is not ImageFormat.QCOW2:
            raise NotSupported(f"cannot compare {i.path}: QEMU cannot read {LABEL[i.format]} "
                               "differencing disks")
    if ia.virtual_size != ib.virtual_size:
        return False
    result = _run(["compare", "-q", "-f", fa.value, "-F", fb.value,
                   os.path.abspath(a), os.path.abspath(b)],
                  _scaled_timeout(ia.allocated, ib.allocated), f"compare {a} with {b}")
    if result.returncode in (0, 1):
        return result.returncode == 0
    raise _open_failed("compare", f"{a} with {b}", fa, result.stderr)


def check(path: str, fmt: ImageFormat) -> str | None:
    """One line describing what is wrong with ``path`` as a ``fmt`` image, or None.

    Reported: a missing or non-regular file, a file whose magic says another format, a damaged
    VHD footer/dynamic header or VHDX metadata, and what ``qemu-img check -f fmt`` calls
    corruption (leaked clusters are harmless and not reported). Raw files and formats qemu-img
    cannot check pass once they open. A qemu-img timeout still raises SystemNotAvailable.
    """
    fmt = as_format(fmt)
    try:
        st = require_file(path)
        _require_format(path, fmt)
        headers = _headers(path, fmt)
    except VsmsError as exc:
        return str(exc)
    if headers is not None and headers.warning:
        return headers.warning
    if fmt is ImageFormat.RAW or (
            headers is not None and headers.type is VirtualHardDiskType.DIFFERENCING):
        return None
    result = _run(["check", "--output=json", "-f", fmt.value, os.path.abspath(path)],
                  _scaled_timeout(st.st_blocks * 512), f"check {path}")
    if result.returncode == _NO_CHECK:
        return None
    try:
        report: dict[str, Any] = json.loads(result.stdout)
        corrupt = int(report.get("corruptions", 0))
        errors = int(report.get("check-errors", 0))
    except (ValueError, TypeError, AttributeError):
        return (f"qemu-img cannot check {path} as {LABEL[fmt]}: {stderr_summary(result.stderr)}")
    if corrupt or errors or result.returncode not in (0, 3):
        return (f"qemu-img check found {corrupt} corruption(s) and {errors} check error(s) in "
                f"{path}: {stderr_summary(result.stderr)}")
    return None


# --------------------------------------------------------------------------- snapshot merges

def overlay_commit(path: str, backing: str, backing_fmt: ImageFormat) -> None:
    """Write the clusters of the qcow2 overlay ``path`` into its backing file ``backing``
    (``qemu-img commit -d``: the overlay is left as it was, its guest view unchanged at every
    moment, so a merge stopped half-way is re-done from the start). ``backing`` must be what
    the overlay's header names; the time allowed grows with the overlay's allocated size."""
    backing_fmt = as_format(backing_fmt)
    _require_format(path, ImageFormat.QCOW2)
    _require_format(backing, backing_fmt)
    st = require_file(path)
    result = _run(["commit", "-q", "-d", "-f", "qcow2", os.path.abspath(path)],
                  _scaled_timeout(st.st_blocks * 512), f"merge {path} into {backing}")
    if result.returncode != 0:
        raise SystemNotAvailable(f"qemu-img failed to merge {path} into {backing}: "
                                 f"{stderr_summary(result.stderr)}")


def overlay_rebacked(path: str, backing: str, backing_fmt: ImageFormat) -> None:
    """Record ``backing`` (opened as ``backing_fmt``) as the backing file of the qcow2 overlay
    ``path`` without copying data (``qemu-img rebase -u``): only for a new backing file whose
    guest view equals the old one's (as after ``overlay_commit`` of the old into the new)."""
    backing_fmt = as_format(backing_fmt)
    _require_format(path, ImageFormat.QCOW2)
    _require_format(backing, backing_fmt)
    result = _run(["rebase", "-u", "-f", "qcow2", "-b", os.path.abspath(backing),
                   "-F", backing_fmt.value, os.path.abspath(path)], INFO_TIMEOUT,
                  f"re-parent {path} onto {backing}")
    if result.returncode != 0:
        raise SystemNotAvailable(f"qemu-img failed to re-parent {path} onto {backing}: "
                                 f"{stderr_summary(result.stderr)}")
