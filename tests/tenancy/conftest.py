"""Fixtures shared with tests/virt (domains a test creates are removed afterwards)."""

from tests.virt.conftest import created, qemu_created  # noqa: F401
