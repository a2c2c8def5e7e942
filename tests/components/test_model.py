"""Fast checks of the pieces under the integration components (no libvirt): the guest agent
channel seen in a live domain XML, the KVP rules, the items through our metadata and through an
export's settings instance, and the service settings file."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from vsms.errors import InvalidParameter, SystemNotAvailable
from vsms.mapping import components as mc
from vsms.model.vm import VirtualSystem, new_guid
from vsms.store import service_settings
from vsms.virt import kvp, metadata
from vsms.virt.agent import agent_connected

_CHANNEL = ("<domain><devices><channel type='unix'><target type='virtio' "
            "name='org.qemu.guest_agent.0' state='{}'/></channel></devices></domain>")


def test_agent_channel_state() -> None:
    assert agent_connected(_CHANNEL.format("connected"))
    assert not agent_connected(_CHANNEL.format("disconnected"))
    assert not agent_connected("<domain><devices/></domain>")
    assert not agent_connected("<not xml")


def test_kvp_rules() -> None:
    items = kvp.apply({}, [("a", "1"), ("b", "2")], kvp.Change.ADD, "vm")
    assert items == {"a": "1", "b": "2"}
    assert kvp.apply(items, [("a", "x")], kvp.Change.MODIFY, "vm") == {"a": "x", "b": "2"}
    assert kvp.apply(items, [("a", "")], kvp.Change.REMOVE, "vm") == {"b": "2"}
    for requested, change, words in (
            ([("a", "9")], kvp.Change.ADD, "already exists"),
            ([("z", "9")], kvp.Change.MODIFY, "no such item"),
            ([("z", "")], kvp.Change.REMOVE, "no such item"),
            ([("c", "1"), ("c", "2")], kvp.Change.ADD, "twice"),
            ([], kvp.Change.ADD, "empty"),
            ([(f"k{i}", "") for i in range(129)], kvp.Change.ADD, "at most 128")):
        with pytest.raises(InvalidParameter, match=words):
            kvp.apply(items, requested, change, "vm")
    assert items == {"a": "1", "b": "2"}  # unchanged by the refusals
    with pytest.raises(InvalidParameter, match="control characters"):
        kvp.check_item("k", "line\nbreak", "DataItems[0]", kvp.Change.ADD)
    assert kvp.check_item("k", None, "x", kvp.Change.ADD) == ("k", "")


def test_items_through_metadata_and_export() -> None:
    vs = VirtualSystem(guid=new_guid(), name="kvp", kvp_items={"Role": "web", "Ünï": "<&\">"})
    text = ET.tostring(metadata.to_element(vs, "OWNER"), encoding="unicode")
    back = metadata.from_element(ET.fromstring(text))  # as libvirt hands it back
    assert back.kvp_items == vs.kvp_items
    inst = mc.export_instance(vs)
    assert inst is not None and inst.classname == mc.KVP_SETTINGS
    assert mc.host_items(inst) == vs.kvp_items
    assert mc.export_instance(VirtualSystem(guid=new_guid(), name="none")) is None


def test_service_settings_file(tmp_path: Path) -> None:
    assert service_settings.load(tmp_path) == service_settings.ServiceSettings()
    changed = service_settings.ServiceSettings(primary_owner_name="lab",
                                               numa_spanning_enabled=False)
    service_settings.save(tmp_path, changed)
    assert service_settings.load(tmp_path) == changed
    assert [p.name for p in tmp_path.iterdir()] == [service_settings.FILE_NAME]  # no temp left
    (tmp_path / service_settings.FILE_NAME).write_text('{"numa_spanning_enabled": "yes"}')
    with pytest.raises(SystemNotAvailable, match="damaged"):
        service_settings.load(tmp_path)
