"""A throw-away XFS with reflink on a loop device, for tests and benchmarks (root only).

Product code never imports this module. ``loop_xfs(parent, size)`` makes a sparse image file
under ``parent``, formats it ``mkfs.xfs -m reflink=1``, mounts it with ``-o loop`` on a new
world-readable directory beside it and yields that directory; afterwards it unmounts (lazily if
the mount is still busy) and deletes both, also when the body raised.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

MIN_XFS_BYTES = 512 * 1024 * 1024  # mkfs.xfs wants at least 300 MiB; the image is sparse


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


@contextlib.contextmanager
def loop_xfs(parent: Path, size: int = MIN_XFS_BYTES, prefix: str = "vsms-xfs"
             ) -> Iterator[Path]:
    """The mounted XFS (see the module docstring); ``CalledProcessError`` when mkfs.xfs or
    mount fail."""
    parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    image = parent / f"{prefix}-{token}.img"
    mnt = Path(tempfile.mkdtemp(prefix=f"{prefix}-{token}-", dir=parent))
    mounted = False
    try:
        with open(image, "wb") as fh:
            fh.truncate(max(size, MIN_XFS_BYTES))
        _run(["mkfs.xfs", "-q", "-m", "reflink=1", str(image)])
        _run(["mount", "-o", "loop", str(image), str(mnt)])
        mounted = True
        os.chmod(mnt, 0o755)
        yield mnt
    finally:
        if mounted:
            try:
                _run(["umount", str(mnt)])
            except subprocess.SubprocessError:
                _run(["umount", "-l", str(mnt)])
        with contextlib.suppress(OSError):
            mnt.rmdir()
        with contextlib.suppress(OSError):
            image.unlink()
