"""The guest image and the domain type, found once per session for every guest-OS module
(finding the cached image costs apt-cache look-ups; the first build, minutes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import TEST_ROOT
from tests.guest import guests
from vsms.testing import guestos


@dataclass(frozen=True)
class GuestImage:
    path: Path  # the cached, read-only guest VHD: copy it per VM
    domain_type: str  # what the guests run with here ("qemu" for TCG, "auto", "kvm")


@pytest.fixture(scope="session")
def guest_image() -> GuestImage:
    cache = TEST_ROOT / "guest-cache"
    image = guestos.guest_image(cache)
    return GuestImage(image, guests.domain_type(image, cache))
