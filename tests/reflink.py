"""A small loop-mounted XFS with reflink for tests that need FICLONE (root and mkfs.xfs)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

XFS_IMAGE_BYTES = 512 * 1024 * 1024  # mkfs.xfs wants at least 300 MiB; the image is sparse

needs_xfs = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mkfs.xfs") is None,
                               reason="needs root and mkfs.xfs for a loop-mounted XFS")


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


@contextlib.contextmanager
def loop_xfs(parent: Path) -> Iterator[Path]:
    """A fresh XFS (reflink=1) mounted on a new world-readable directory under ``parent``;
    unmounted and deleted afterwards."""
    parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    image = parent / f"vsms-test-xfs-{token}.img"
    mnt = Path(tempfile.mkdtemp(prefix=f"vsms-test-xfs-{token}-", dir=parent))
    mounted = False
    try:
        with open(image, "wb") as fh:
            fh.truncate(XFS_IMAGE_BYTES)
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
