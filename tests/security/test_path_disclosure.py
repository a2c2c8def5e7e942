"""Issue 9 finding 6: a refused path tells the client nothing it did not send.

Against a real ``vsms serve`` on qemu:///system, as an operator: GetVirtualHardDiskInfo on
``/proc/<pid>/fd/<n>`` (a file another process holds open, outside the roots) used to answer
"… (resolves to <that file>)"; a path whose resolution is denied (``/proc/1/cwd/x``) used to be
an internal error. Both are now 32769 with one fixed message.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import pywbem

from tests.cli.served import Served, add_user, make_root, serving
from tests.conftest import QEMU_URI, TEST_ROOT, fresh_dir
from vsms.cim import names
from vsms.cim.enums import ReturnCode

pytestmark = pytest.mark.qemu


@pytest.fixture(scope="module")
def operator() -> Iterator[tuple[Served, pywbem.WBEMConnection]]:
    root = make_root()
    password = add_user(root / "state", "op", "operator")
    with serving(root, root / "state", [root], QEMU_URI) as server:
        yield server, pywbem.WBEMConnection(server.url, ("op", password),
                                            default_namespace="root/virtualization", timeout=60)


def disk_info(conn: pywbem.WBEMConnection, path: str) -> tuple[int, str]:
    service = conn.EnumerateInstanceNames(names.IMAGE_SERVICE)[0]
    rv, out = conn.InvokeMethod("GetVirtualHardDiskInfo", service, [("Path", path)])
    return int(rv), str(out.get("ErrorDescription") or "")


def fixed_message(what: str, root: Path) -> str:
    return (f"Path {what!r} is outside the storage roots ({root}): use a path under a storage "
            "root or add a root with --storage-root")


def test_a_descriptor_of_another_file_is_not_followed_in_words(
        operator: tuple[Served, pywbem.WBEMConnection]) -> None:
    server, conn = operator
    elsewhere = fresh_dir(TEST_ROOT / "outside")
    secret = elsewhere / "someone-elses-vm1.vhd"
    secret.write_bytes(b"\0" * 512)
    fd = os.open(secret, os.O_RDONLY)  # another process's open file, outside the roots
    try:
        raw = f"/proc/{os.getpid()}/fd/{fd}"
        rv, text = disk_info(conn, raw)
    finally:
        os.close(fd)
        shutil.rmtree(elsewhere, ignore_errors=True)
    assert rv == ReturnCode.ACCESS_DENIED
    assert text == fixed_message(raw, server.root)
    assert "someone-elses" not in text and str(elsewhere) not in text


@pytest.mark.parametrize("raw", ["/proc/1/cwd/x", "/proc/1/root/etc/shadow"])
def test_a_denied_resolution_is_access_denied(
        operator: tuple[Served, pywbem.WBEMConnection], raw: str) -> None:
    server, conn = operator
    rv, text = disk_info(conn, raw)  # realpath raises PermissionError on the way
    assert rv == ReturnCode.ACCESS_DENIED, text
    assert text == fixed_message(raw, server.root)
    assert "PermissionError" not in server.stderr() and "Traceback" not in server.stderr()


def test_a_plain_outside_path_gets_the_same_message(
        operator: tuple[Served, pywbem.WBEMConnection]) -> None:
    server, conn = operator
    link = server.root / "to-etc"
    link.symlink_to("/etc")  # inside the roots by name, outside once resolved
    try:
        raw = str(link / "hostname")
        rv, text = disk_info(conn, raw)
    finally:
        link.unlink()
    assert rv == ReturnCode.ACCESS_DENIED
    assert text == fixed_message(raw, server.root)
    assert "/etc/hostname" not in text.replace(raw, "")
