"""Shared fixtures.

QEMU (running as the libvirt-qemu user) must reach the disk images, so storage used with
qemu:///system lives under /var/tmp in world-traversable directories, not in pytest's 0700 tmp.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from vsms.cim import schema

QEMU_URI = os.environ.get("VSMS_TEST_LIBVIRT_URI", "qemu:///system")
TEST_ROOT = Path(os.environ.get("VSMS_TEST_ROOT", "/var/tmp/vsms-tests"))


def fresh_dir(parent: Path = TEST_ROOT) -> Path:
    """A new world-traversable directory under ``parent`` (made traversable too), usable as a
    storage root by real QEMU, which runs as another user."""
    parent.mkdir(parents=True, exist_ok=True)
    os.chmod(parent, 0o755)
    root = parent / uuid.uuid4().hex[:12]
    root.mkdir()
    os.chmod(root, 0o755)
    return root


@pytest.fixture
def storage_root() -> Iterator[Path]:
    """A fresh world-traversable directory usable as a storage root by real QEMU."""
    root = fresh_dir()
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def qemu_uri() -> str:
    return QEMU_URI


@pytest.fixture(scope="session", autouse=True)
def schema_cache_untouched() -> Iterator[None]:
    """Every Service of this process shares the compiled classes (vsms.cim.schema): at the end
    of the session they must still equal a fresh compile, or some code changed them."""
    yield
    changed = schema.changed_in_cache()
    assert not changed, f"the shared compiled classes of {changed} were modified"
