"""Fixtures of the CIM vocabulary tests: the compiled root/virtualization schema, once."""

from __future__ import annotations

import pytest
import pywbem

from vsms.cim import names
from vsms.cim.schema import load_classes


@pytest.fixture(scope="session")
def classes() -> dict[str, pywbem.CIMClass]:
    """Resolved classes by lower-case name. Tests must not modify them."""
    return {c.classname.lower(): c for c in load_classes(names.NAMESPACE)}
