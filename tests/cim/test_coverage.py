"""docs/coverage.md names every class and method page of the v1 reference, and what it says is
served, declared or not served is what a running service declares (``vsms.coverage``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from vsms import coverage
from vsms.app import Service
from vsms.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PAGES = Path(os.environ.get(
    "VSMS_REFERENCE_PAGES",
    str(ROOT.parent / "shared" / "reference" / "hyperv-v1" / "pages")))
pytestmark = pytest.mark.skipif(not PAGES.is_dir(), reason=f"no reference pages in {PAGES}")
TABLE = ROOT / "docs" / "coverage.md"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("coverage")
    settings = Settings(state_dir=tmp / "state", storage_roots=(tmp / "storage",),
                        libvirt_uri="test:///default")
    with Service(settings) as svc:
        yield svc


def test_the_table_names_every_page_once() -> None:
    rows = coverage.parse(TABLE.read_text(encoding="utf-8"))
    listed = [(r.kind, r.name, r.page) for r in rows]
    assert len(listed) == len(set(listed)), "a page is listed twice"
    on_disk = set(coverage.pages(PAGES))
    assert len(on_disk) > 300  # 214 class pages and 168 method pages in the v1 reference
    assert set(listed) == on_disk, (
        f"missing from docs/coverage.md: {sorted(on_disk - set(listed))[:10]}; "
        f"not a page: {sorted(set(listed) - on_disk)[:10]} — regenerate it with "
        f"`.venv/bin/python -m vsms.coverage > docs/coverage.md`")


def test_the_table_agrees_with_the_service(service: Service) -> None:
    rows = coverage.parse(TABLE.read_text(encoding="utf-8"))
    wrong = []
    for r in rows:
        if r.kind == "class":
            actual = coverage.class_status(service.registry, r.name)
        else:
            cn, meth = r.name.split(".")
            actual = coverage.method_status(service.registry, cn, meth)
        if actual != r.status:
            wrong.append(f"{r.name}: table says {r.status}, the service: {actual}")
        if r.status != coverage.SERVED and not r.reason:
            wrong.append(f"{r.name}: what is not served says why")
    assert not wrong, "\n".join(wrong[:20])


def test_the_import_method_and_the_computer_system_are_served(service: Service) -> None:
    """The status functions can fail: served, and not served for what the schema lacks."""
    reg = service.registry
    assert coverage.method_status(reg, "Msvm_VirtualSystemManagementService",
                                  "ImportVirtualSystem") == coverage.SERVED
    assert coverage.class_status(reg, "Msvm_ComputerSystem") == coverage.SERVED
    assert coverage.class_status(reg, "Msvm_NoSuchClass") == coverage.NOT_SERVED
    assert coverage.method_status(reg, "Msvm_ComputerSystem", "NoSuchMethod") \
        == coverage.NOT_SERVED
