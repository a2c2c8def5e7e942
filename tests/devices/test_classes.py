"""Our MOF of the device classes, the BIOS and their associations against the syntax blocks of
the Hyper-V v1 reference pages (every property, its type, arrays and reference classes)."""

from __future__ import annotations

import pytest
import pywbem

from tests.cim.conftest import classes
from tests.cim.test_reference_pages import PAGES, documented_properties
from vsms.mapping import logical_devices as ld

__all__ = ["classes"]

pytestmark = pytest.mark.skipif(not PAGES.is_dir(), reason=f"no reference pages in {PAGES}")

CLASSES = (*ld.DEVICE_CLASSES, ld.BIOS, *ld.ASSOCIATIONS)


@pytest.mark.parametrize("classname", CLASSES)
def test_properties_match_the_class_page(classes: dict[str, pywbem.CIMClass],
                                         classname: str) -> None:
    expected = documented_properties(PAGES / f"{classname.lower().replace('_', '-')}.md")
    cls = classes[classname.lower()]
    got = {n.lower(): (p.type, p.is_array, (p.reference_class or "").lower() or None)
           for n, p in cls.properties.items()}
    assert got == expected


@pytest.mark.parametrize("classname", ld.DEVICE_CLASSES)
def test_devices_are_keyed_by_system_and_device_id(classes: dict[str, pywbem.CIMClass],
                                                   classname: str) -> None:
    cls = classes[classname.lower()]
    keys = {n for n, p in cls.properties.items() if "Key" in p.qualifiers
            and p.qualifiers["Key"].value}
    assert keys == {"SystemCreationClassName", "SystemName", "CreationClassName", "DeviceID"}
