"""Fuzz target: ``vsms.exportdir.reader.read_export`` on a directory built from fuzz bytes.

``export_codec.materialize`` lays out the directory (files, folders, symbolic and hard links,
FIFOs; an ``@auto`` manifest that matches). The reader runs with full verification; disk
formats are probed with ``vsms.disks.qemuimg.probe_format`` and disks are checked from their
VHD/VHDX headers only (qemu-img itself is not run: it would cost 20 ms per input).

Allowed outcomes: an ``ExportPackage`` or a ``vsms.errors.VsmsError`` (ValidationFailed for
content, InvalidParameter for the quick checks). Anything else is a defect.

Run: ``.venv/bin/python -m fuzz.fuzz_export -max_total_time=600 NEW_DIR fuzz/corpus/export``
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from fuzz.export_codec import materialize
from fuzz.runner import fuzz, instrumented

with instrumented():
    from vsms.disks import vhd
    from vsms.disks.qemuimg import probe_format
    from vsms.errors import VsmsError
    from vsms.exportdir.reader import read_export
    from vsms.model.vm import ImageFormat


def headers_only(path: str, fmt: ImageFormat) -> str | None:
    """The reader's disk check without qemu-img: the VHD or VHDX headers must read."""
    if fmt is ImageFormat.VHD:
        return vhd.read_vhd(path).warning or None
    if fmt is ImageFormat.VHDX:
        vhd.read_vhdx(path)
    return None


def test_one_input(data: bytes) -> None:
    work = Path(tempfile.mkdtemp(prefix="vsms-fuzz-export-"))
    try:
        root = work / "vm"
        root.mkdir()
        materialize(data, root)
        try:
            pkg = read_export(root, verify=True, probe=probe_format, check=headers_only)
        except VsmsError:
            return
        if pkg.directory != root.resolve() or not pkg.instances:
            raise AssertionError(f"an accepted export is inconsistent: {pkg!r}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    fuzz(test_one_input)


if __name__ == "__main__":
    main()
    sys.exit(0)
