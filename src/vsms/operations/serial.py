"""Where a serial port's Unix socket may be: the check behind a COM port's Connection."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from vsms.errors import InvalidParameter
from vsms.operations.paths import StorageRoots


def socket_checker(roots: StorageRoots) -> Callable[[str], str]:
    """The check of the host path a COM port's socket is made at: absolute, inside the storage
    roots (AccessDenied otherwise, as for images), in an existing directory, and either free or
    a socket already (a file of another kind is refused). Returns the resolved path."""

    def check(raw: str) -> str:
        what = "serial port socket"
        path = roots.confine(raw, what)
        if not path.parent.is_dir():
            raise InvalidParameter(f"{what} {raw}: directory {path.parent} does not exist: "
                                   "create it first or name a socket in an existing directory")
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return str(path)
        if not stat.S_ISSOCK(st.st_mode):
            raise InvalidParameter(f"{what} {raw} exists and is not a socket: name a new path")
        return str(path)
    return check
