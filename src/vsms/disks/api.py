"""Interface of the disks package (implemented in qemuimg.py, vhd.py, copy.py).

This file is the contract the rest of vsms codes against; keep it in step with the code. It also
holds the two border helpers the disk modules share: the check that a path names an existing
regular file, and the translation of ``OSError`` into ``vsms.errors`` classes.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

from vsms.cim.enums import VirtualHardDiskType
from vsms.errors import (
    AccessDenied,
    FileNotFound,
    InvalidParameter,
    OperationFailed,
    SystemNotAvailable,
    VsmsError,
)
from vsms.model.vm import ImageFormat

ProgressFn = Callable[[int], None]
"""Called with the number of bytes done so far (monotonic)."""


@dataclass(frozen=True)
class ImageInfo:
    path: str
    format: ImageFormat
    type: VirtualHardDiskType  # fixed / dynamic / differencing
    virtual_size: int  # guest-visible bytes (MaxInternalSize)
    file_size: int  # st_size of the file (FileSize)
    allocated: int  # bytes actually allocated on the host
    parent_path: str  # "" unless differencing


def translate_oserror(exc: OSError, action: str) -> VsmsError:
    """Map an ``OSError`` raised while doing ``action`` (e.g. "read /x/a.vhd") to a vsms error.

    The message names the action, the system's reason and what to do about it.
    """
    reason = exc.strerror or str(exc)
    code = exc.errno
    if code == errno.ENOENT:
        return FileNotFound(f"cannot {action}: {reason}; check that the path exists")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return AccessDenied(f"cannot {action}: {reason}; check the file and folder permissions "
                            "(and that the file system is writable)")
    if code in (errno.ENOSPC, errno.EDQUOT):
        return OperationFailed(f"cannot {action}: {reason}; free some space or choose a folder "
                               "on another file system")
    if code in (errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP, errno.EEXIST):
        return InvalidParameter(f"cannot {action}: {reason}; pass a valid path to a regular file")
    return SystemNotAvailable(f"cannot {action}: {reason} (errno {code}); check the storage "
                              "device and the system log")


def require_file(path: str, what: str = "disk image") -> os.stat_result:
    """Return the ``stat`` of ``path`` after checking that it is an existing regular file.

    Raises FileNotFound when nothing is there and InvalidParameter for a directory, device, FIFO
    or socket. Symbolic links are followed.
    """
    if not isinstance(path, str) or not path or "\x00" in path:
        raise InvalidParameter(f"the {what} path {path!r} is empty or not a valid path")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFound(f"the {what} {path} does not exist; check the path") from None
    except OSError as exc:
        raise translate_oserror(exc, f"examine the {what} {path}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a directory" if stat.S_ISDIR(st.st_mode)
                else "a device" if stat.S_ISBLK(st.st_mode) or stat.S_ISCHR(st.st_mode)
                else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise InvalidParameter(f"the {what} {path} is {kind}, not a disk image file; "
                               "pass the path of a regular file")
    return st
