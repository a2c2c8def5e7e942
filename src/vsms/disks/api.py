"""Interface of the disks package (implemented in qemuimg.py, vhd.py, copy.py).

This file is the contract the rest of vsms codes against; keep it in step with the code.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from vsms.cim.enums import VirtualHardDiskType
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
