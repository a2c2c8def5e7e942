"""Skip marker for tests that need a loop-mounted XFS (``vsms.testing.loopfs.loop_xfs``)."""

from __future__ import annotations

import os
import shutil

import pytest

from vsms.testing.loopfs import loop_xfs

needs_xfs = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mkfs.xfs") is None,
                               reason="needs root and mkfs.xfs for a loop-mounted XFS")

__all__ = ["loop_xfs", "needs_xfs"]
