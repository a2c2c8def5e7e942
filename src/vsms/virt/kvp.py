"""Host key-value pairs (KVP HostExchangeItems) of a VM: kept in our libvirt metadata, changed by
AddKvpItems / ModifyKvpItems / RemoveKvpItems.

Each item is one ``<vsms:kvp name="…" data="…"/>`` child of our ``vsms:system`` element (values
as attributes, which libvirt keeps exactly), so the items live and die with the domain's
definition and survive a restart of the service. ``apply`` checks a whole request before it
changes anything: a call either changes every item it names or none.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from enum import Enum

from vsms.errors import InvalidParameter

TAG = "kvp"
MAX_NAME = 1024  # MaxLen of Msvm_KvpExchangeDataItem.Name and .Data
MAX_DATA = 1024
MAX_PER_CALL = 128  # the method pages: "at most 128 elements"
MAX_ITEMS = 1024  # per VM: the metadata stays small


class Change(Enum):
    ADD = "add"
    MODIFY = "modify"
    REMOVE = "remove"


def write(root: ET.Element, prefix: str, items: Mapping[str, str]) -> None:
    """Append one ``prefix:kvp`` element per item to ``root`` (our ``vsms:system`` element)."""
    for name, data in items.items():
        ET.SubElement(root, f"{prefix}:{TAG}", {"name": name, "data": data})


def read(el: ET.Element, namespace: str) -> dict[str, str]:
    """The items recorded under ``el`` (elements without a name are skipped)."""
    out: dict[str, str] = {}
    for item in el.findall(f"{{{namespace}}}{TAG}"):
        name = item.get("name")
        if name:
            out[name] = item.get("data", "")
    return out


def _printable(text: str) -> bool:
    return not any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def check_item(name: object, data: object, where: str, change: Change) -> tuple[str, str]:
    """``(name, data)`` of one requested item; InvalidParameter naming what is wrong."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameter(f"{where}: Name is empty: give the key of the item")
    if len(name) > MAX_NAME or not _printable(name):
        raise InvalidParameter(f"{where}: Name must be 1 to {MAX_NAME} characters without "
                               "control characters")
    if change is Change.REMOVE:
        return name, ""
    if data is None:
        data = ""
    if not isinstance(data, str):
        raise InvalidParameter(f"{where}: Data must be a string")
    if len(data) > MAX_DATA or not _printable(data):
        raise InvalidParameter(f"{where} ({name!r}): Data must be at most {MAX_DATA} characters "
                               "without control characters (tabs and line breaks included)")
    return name, data


def apply(items: Mapping[str, str], requested: Sequence[tuple[str, str]], change: Change,
          vm: str) -> dict[str, str]:
    """The VM's items after ``change`` with ``requested`` (checked by ``check_item``); raises
    InvalidParameter (and changes nothing) when an item to add exists already, an item to
    modify or remove does not, a name repeats, or the VM would hold too many items."""
    if not requested:
        raise InvalidParameter("DataItems is empty: pass at least one embedded "
                               "Msvm_KvpExchangeDataItem")
    if len(requested) > MAX_PER_CALL:
        raise InvalidParameter(f"DataItems holds {len(requested)} items; at most "
                               f"{MAX_PER_CALL} are allowed per call: split the request")
    seen: set[str] = set()
    for name, _ in requested:
        if name in seen:
            raise InvalidParameter(f"DataItems names the item {name!r} twice: name each item "
                                   "once")
        seen.add(name)
    out = dict(items)
    for name, data in requested:
        if change is Change.ADD:
            if name in out:
                raise InvalidParameter(f"the item {name!r} already exists on {vm}: change it "
                                       "with ModifyKvpItems or remove it first")
            out[name] = data
        elif name not in out:
            verb = "modify" if change is Change.MODIFY else "remove"
            raise InvalidParameter(f"cannot {verb} the item {name!r}: {vm} has no such item; "
                                   "add it with AddKvpItems (names are case-sensitive)")
        elif change is Change.MODIFY:
            out[name] = data
        else:
            del out[name]
    if len(out) > MAX_ITEMS:
        raise InvalidParameter(f"{vm} would hold {len(out)} key-value items; at most "
                               f"{MAX_ITEMS} are kept per virtual machine: remove some first")
    return out
