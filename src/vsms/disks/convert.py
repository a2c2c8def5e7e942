"""Disk image conversion with ``qemu-img convert``, with progress and cancellation.

Both formats are always named (``-f``/``-O``) and both paths are handed to qemu-img in absolute
form. The target is claimed exclusively before qemu-img runs, so nobody's file is overwritten,
and it is removed again when the conversion fails or is cancelled. The ``-p`` progress lines
qemu-img prints on its stdout pipe are read while it runs and reported as bytes of data out of
``copy.data_bytes(src)``. QEMU cannot read VHD/VHDX differencing disks, so those are refused.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import selectors
import signal
import subprocess
import threading
import time

from vsms.cim.enums import VirtualHardDiskType
from vsms.disks import qemuimg
from vsms.disks.api import ProgressFn, translate_oserror
from vsms.disks.copy import data_bytes
from vsms.disks.qemuimg import LABEL, as_format, stderr_summary
from vsms.errors import (
    AccessDenied,
    InUse,
    InvalidParameter,
    JobCancelled,
    NotSupported,
    OperationFailed,
    SystemNotAvailable,
    VsmsError,
)
from vsms.model.vm import ImageFormat

POLL_INTERVAL = 0.2  # seconds between two looks at ``cancel``
TERM_GRACE = 5.0  # seconds qemu-img gets to exit after SIGTERM before it is killed
KILL_WAIT = 10.0  # seconds to wait for the exit after SIGKILL
_SLOW_BYTES_PER_SECOND = 16 * 1024 * 1024  # pessimistic rate for the overall deadline
_STDERR_LIMIT = 64 * 1024
_PERCENT = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")
_EXTENSIONS = {".vhd": ImageFormat.VHD, ".avhd": ImageFormat.VHD, ".vhdx": ImageFormat.VHDX,
               ".qcow2": ImageFormat.QCOW2, ".img": ImageFormat.RAW, ".raw": ImageFormat.RAW}


def format_for_path(path: str) -> ImageFormat | None:
    """The image format a file name asks for, from its extension (case-insensitive):
    .vhd/.avhd -> VHD, .vhdx -> VHDX, .qcow2 -> QCOW2, .img/.raw -> RAW, anything else None."""
    return _EXTENSIONS.get(os.path.splitext(path)[1].lower())



def _stderr(raw: bytes) -> str:
    return stderr_summary(raw.decode("utf-8", errors="replace"))


class _Progress:
    """Turns qemu-img's percentages into monotonic byte counts out of ``total``."""

    def __init__(self, fn: ProgressFn | None, total: int) -> None:
        self.fn = fn
        self.total = total
        self.reported: int | None = None
        self.tail = b""

    def feed(self, chunk: bytes) -> None:
        *lines, self.tail = re.split(rb"[\r\n]", self.tail + chunk)
        for line in lines:
            match = _PERCENT.search(line)
            if match is not None:
                self._report(min(self.total, int(self.total * float(match[1]) / 100)))

    def _report(self, done: int) -> None:
        if self.fn is not None and (self.reported is None or done > self.reported):
            self.reported = done
            self.fn(done)

    def finish(self) -> None:
        if self.fn is not None and self.reported != self.total:
            self.reported = self.total
            self.fn(self.total)


def _claim(dst: str) -> None:
    """Create ``dst`` empty and exclusively: qemu-img then writes into our own new file."""
    exists = (f"the conversion target {dst} already exists; a conversion never overwrites a "
              "file: choose another path or delete the old file first")
    if os.path.lexists(dst):
        raise InvalidParameter(exists)
    folder = os.path.dirname(dst)
    if not os.path.isdir(folder):
        why = "is not a folder" if os.path.lexists(folder) else "does not exist"
        raise InvalidParameter(f"the folder {folder} for the conversion target {why}; create "
                               "the folder first or choose another path")
    try:
        os.close(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
    except FileExistsError:
        raise InvalidParameter(exists) from None
    except OSError as exc:
        raise translate_oserror(exc, f"create {dst}") from None


def _failed(src: str, src_fmt: ImageFormat, dst: str, stderr: bytes) -> VsmsError:
    """The vsms error for a qemu-img convert that exited non-zero, quoting its stderr."""
    err = _stderr(stderr)
    text = stderr.decode("utf-8", errors="replace")
    action = f"convert {src} to {dst}"
    if "another process using the image" in text or 'Failed to get "write" lock' in text:
        return InUse(f"cannot {action}: {err}; shut down the virtual machine that uses the "
                     "disk and try again")
    if "No space left" in text or "Disk quota" in text:
        return OperationFailed(f"cannot {action}: {err}; free some space or choose a folder "
                               "on another file system")
    if "Permission denied" in text or "Read-only file system" in text:
        return AccessDenied(f"cannot {action}: {err}; check the file and folder permissions")
    if ("Could not open" in text or "error while reading" in text
            or "invalid" in text.lower() or "corrupt" in text.lower()):
        return InvalidParameter(f"qemu-img cannot {action}: {err}; check that {src} is an "
                                f"intact {LABEL[src_fmt]} image")
    return SystemNotAvailable(f"qemu-img failed to {action}: {err}")


_PR_SET_PDEATHSIG = 1


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after TERM_GRACE; each wait has a deadline."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(timeout=TERM_GRACE)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=KILL_WAIT)


def _pump(proc: subprocess.Popen[bytes], progress: _Progress, cancel: threading.Event | None,
          timeout: float, what: str) -> bytes:
    """Read qemu-img's stdout (progress) and stderr until both close; return the stderr.

    ``cancel`` and the ``timeout`` (seconds from now) are checked every POLL_INTERVAL seconds.
    """
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None and proc.stderr is not None
    out_fd = proc.stdout.fileno()
    stderr = bytearray()
    with selectors.DefaultSelector() as sel:
        sel.register(out_fd, selectors.EVENT_READ)
        sel.register(proc.stderr.fileno(), selectors.EVENT_READ)
        while sel.get_map():
            if cancel is not None and cancel.is_set():
                raise JobCancelled(f"{what} was cancelled on request")
            if time.monotonic() > deadline:
                raise SystemNotAvailable(f"{what} did not finish within {timeout:.0f} s "
                                         "(qemu-img was stopped); the storage may be hung or "
                                         "overloaded, try again later")
            for key, _events in sel.select(timeout=POLL_INTERVAL):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fd)
                elif key.fd == out_fd:
                    progress.feed(chunk)
                elif len(stderr) < _STDERR_LIMIT:
                    stderr += chunk
    return bytes(stderr)


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL it when the service dies, so a conversion never goes
    on writing into a target that crash recovery has already removed (prctl PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _run_convert(args: list[str], progress: _Progress, cancel: threading.Event | None,
                 timeout: float, what: str, pass_fds: tuple[int, ...] = ()
                 ) -> tuple[int, bytes]:
    try:
        proc = subprocess.Popen([qemuimg.QEMU_IMG, *args], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, "LC_ALL": "C"}, pass_fds=pass_fds,
                                preexec_fn=_die_with_parent)
    except FileNotFoundError:
        raise SystemNotAvailable(f"cannot run {what}: {qemuimg.QEMU_IMG} is not installed or "
                                 "not on PATH; install the qemu-utils package") from None
    except OSError as exc:
        raise translate_oserror(exc, f"run {qemuimg.QEMU_IMG} for {what}") from None
    try:
        stderr = _pump(proc, progress, cancel, timeout, what)
        try:
            code = proc.wait(timeout=TERM_GRACE)
        except subprocess.TimeoutExpired:
            raise SystemNotAvailable(f"{what} did not exit in time (qemu-img was stopped); "
                                     "try again later") from None
        return code, stderr
    finally:
        _stop(proc)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _fsync(path: str, directory: bool) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def convert_file(src: str, src_fmt: ImageFormat, dst: str, dst_fmt: ImageFormat, *,
                 progress: ProgressFn | None = None,
                 cancel: threading.Event | None = None, dst_fd: int | None = None) -> None:
    """Convert the ``src_fmt`` image ``src`` into the new ``dst_fmt`` image ``dst``.

    Runs ``qemu-img convert -p -f src_fmt -O dst_fmt`` (VHD output: ``-o subformat=dynamic,
    force_size=on``, so the size stays exact); holes stay holes. ``src_fmt`` must match the
    file's magic. ``progress`` receives bytes of data done out of ``data_bytes(src)``
    (monotonic, ending at that total); ``cancel`` is checked every 0.2 s and then qemu-img is
    stopped (SIGTERM, SIGKILL after 5 s), ``dst`` removed and JobCancelled raised. An existing
    ``dst`` is refused (InvalidParameter); VHD/VHDX differencing sources are refused
    (NotSupported); a qcow2 overlay is flattened, its backing chain read as recorded. On any
    failure ``dst`` is removed and the error (with qemu-img's stderr) raised; on success ``dst``
    and its folder are fsynced.

    With ``dst_fd`` (an empty file the caller created exclusively, e.g. relative to a folder
    handle) qemu-img writes into that file, as ``/proc/self/fd/N`` of the descriptor handed to
    it, so no rename or symbolic link of a folder on the way can redirect it; ``dst`` then only
    names the target in messages, and a partial file is left to the caller's undo step.
    """
    src_fmt, dst_fmt = as_format(src_fmt), as_format(dst_fmt)
    what = f"the conversion of {src} to {dst}"
    if cancel is not None and cancel.is_set():
        raise JobCancelled(f"{what} was cancelled on request")
    if not isinstance(dst, str) or not dst or "\x00" in dst:
        raise InvalidParameter(f"the conversion target {dst!r} is not a valid path")
    info = qemuimg.info(src, src_fmt)
    if info.type is VirtualHardDiskType.DIFFERENCING and src_fmt is not ImageFormat.QCOW2:
        raise NotSupported(f"cannot convert {src}: it is a {LABEL[src_fmt]} differencing disk, "
                           "which QEMU cannot read; merge it into its parent first")
    total = data_bytes(src)
    src_abs, dst_abs = os.path.abspath(src), os.path.abspath(dst)
    args = ["convert", "-p", "-f", src_fmt.value, "-O", dst_fmt.value]
    if dst_fmt is ImageFormat.VHD:
        args += ["-o", "subformat=dynamic,force_size=on"]
    counter = _Progress(progress, total)
    timeout = 120.0 + total / _SLOW_BYTES_PER_SECOND
    if dst_fd is not None:
        code, stderr = _run_convert([*args, src_abs, f"/proc/self/fd/{dst_fd}"], counter,
                                    cancel, timeout, what, (dst_fd,))
        if code != 0:
            raise _failed(src, src_fmt, dst, stderr)
        try:
            os.fsync(dst_fd)
        except OSError as exc:
            raise translate_oserror(exc, f"flush {dst} to the disk") from None
        counter.finish()
        return
    _claim(dst_abs)
    try:
        code, stderr = _run_convert([*args, src_abs, dst_abs], counter, cancel, timeout, what)
        if code != 0:
            raise _failed(src, src_fmt, dst, stderr)
        try:
            _fsync(dst_abs, directory=False)
        except OSError as exc:
            raise translate_oserror(exc, f"flush {dst} to the disk") from None
        counter.finish()
    except BaseException:
        with contextlib.suppress(OSError):  # the first error is the one to report
            os.unlink(dst_abs)
        raise
    with contextlib.suppress(OSError):  # best effort: some filesystems refuse
        _fsync(os.path.dirname(dst_abs), directory=True)
