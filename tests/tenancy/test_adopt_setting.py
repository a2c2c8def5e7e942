"""The ``adopt_domains`` setting on qemu:///system: a domain of an older vsms (metadata without
an instance ID) stays hidden, with a warning, until the setting names it; then the service
adopts it at start and writes an audit line."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from tests.conftest import QEMU_URI, fresh_dir
from tests.virt.conftest import remove_domains, small_vm
from vsms.app import Service
from vsms.auth.audit import AuditLog
from vsms.model.vm import new_guid
from vsms.settings import load_settings
from vsms.virt import domxml, events

pytestmark = pytest.mark.qemu


@pytest.fixture
def legacy() -> Iterator[str]:
    """A domain as a vsms from before instance IDs defined it."""
    vs = small_vm(new_guid(), "legacy-vm")
    events.ensure_event_loop()
    conn = libvirt.open(QEMU_URI)
    try:
        conn.defineXML(domxml.build(vs, vs.guid, "qemu"))
    finally:
        conn.close()
    yield vs.guid
    remove_domains(QEMU_URI, [vs.guid])


@pytest.fixture
def root() -> Iterator[Path]:
    path = fresh_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_adopt_domains_setting(legacy: str, root: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = {"VSMS_STATE_DIR": str(root / "state"), "VSMS_STORAGE_ROOTS": str(root),
           "VSMS_LIBVIRT_URI": QEMU_URI}
    with caplog.at_level(logging.WARNING, logger="vsms.app"), \
            Service(load_settings(env=env)) as service:
        assert service.host.get_system(legacy) is None
        assert legacy in caplog.text and "vsms vm adopt" in caplog.text
    assert AuditLog(root / "state" / "audit.log").read() == []
    settings = load_settings(env={**env, "VSMS_ADOPT_DOMAINS": f"{legacy}, no-such-domain"})
    assert settings.adopt_domains == (legacy, "no-such-domain")
    with Service(settings) as service:
        vs = service.host.get_system(legacy)
        assert vs is not None and vs.name == "legacy-vm"
        instance = service.instance_id
    records = AuditLog(root / "state" / "audit.log").read()
    assert [(r["event"], r["guid"], r["kind"], r["source"], r["instance"]) for r in records] == [
        ("adopt", legacy, "unowned", "config", instance)]
    with Service(settings) as service:  # a second start: already ours, nothing written
        assert service.host.get_system(legacy) is not None
    assert len(AuditLog(root / "state" / "audit.log").read()) == 1
