"""A listing taken before one of our own changes must not undo it (readers and writers race)."""

from __future__ import annotations

from typing import Any

from tests.virt.test_domxml import built, full_vm
from vsms.virt.cache import SystemCache


class _Dom:
    def __init__(self, guid: str, xml: str) -> None:
        self.guid, self.xml = guid, xml

    def UUIDString(self) -> str:
        return self.guid

    def XMLDesc(self, flags: int = 0) -> str:
        return self.xml


def test_stale_listing_neither_forgets_a_define_nor_resurrects_an_undefine() -> None:
    cache = SystemCache()
    vs = full_vm()
    xml = built(vs)
    conn: Any = None
    cache.refresh(conn, [], force_resync=True)  # an empty host

    since = cache.seq()  # a reader lists the domains: none yet
    stale: list[Any] = []
    cache.store_xml(vs.guid, xml)  # meanwhile a writer defines the VM
    cache.refresh(conn, stale, force_resync=True, since=since)
    assert [g for g, _ in cache.shared()] == [vs.guid]

    since = cache.seq()  # a reader lists the domains: the VM is there
    stale = [_Dom(vs.guid, xml)]
    cache.drop(vs.guid)  # meanwhile a writer undefines it
    cache.refresh(conn, stale, force_resync=True, since=since)
    assert cache.shared() == []

    # a fresh listing is believed again
    cache.refresh(conn, [_Dom(vs.guid, xml)], force_resync=True, since=cache.seq())
    assert [g for g, _ in cache.shared()] == [vs.guid]
