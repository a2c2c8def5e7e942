"""The integration components of a VM (shutdown, heartbeat, time synchronization, key-value pair
exchange, VSS), their settings and their associations, built from the VM model and what the
guest agent said (``virt.agent.GuestView``).

Every VM has all five. A component is keyed like the other devices (SystemName the VM GUID,
DeviceID ``Microsoft:<VM GUID>\\<component GUID>``, the GUIDs of Hyper-V's integration
services); its settings instance has the same text as InstanceID. The heartbeat and the KVP
component follow the guest agent: OperationalStatus 2 (OK) while it answers, 12 (No Contact)
otherwise; EnabledState is 2 (Enabled) while the VM runs and 3 (Disabled) otherwise for those
two and VSS, always 5 (Not Applicable) for shutdown and time synchronization, as the reference
pages give. Msvm_KvpExchangeComponentSettingData.HostExchangeItems holds the host's items,
Msvm_KvpExchangeComponent.GuestIntrinsicExchangeItems the guest's, each an embedded
Msvm_KvpExchangeDataItem (CIM-XML text).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pywbem

from vsms.cim import names
from vsms.cim.embedded import parse_instance, serialize_instance
from vsms.cim.enums import EnabledState
from vsms.mapping import ids
from vsms.model.vm import VirtualSystem
from vsms.virt import kvp

SHUTDOWN = "Msvm_ShutdownComponent"
HEARTBEAT = "Msvm_HeartbeatComponent"
TIME_SYNC = "Msvm_TimeSyncComponent"
KVP = "Msvm_KvpExchangeComponent"
VSS = "Msvm_VssComponent"
DATA_ITEM = "Msvm_KvpExchangeDataItem"
SERVICE_SETTINGS = "Msvm_VirtualSystemManagementServiceSettingData"

# Source of Msvm_KvpExchangeDataItem
SOURCE_HOST, SOURCE_GUEST, SOURCE_INTRINSIC = 0, 1, 2

_NO_CONTACT = 12


@dataclass(frozen=True)
class Component:
    classname: str
    settings: str  # its settings class
    dev_id: str  # the GUID of the integration service


COMPONENTS = (
    Component(SHUTDOWN, "Msvm_ShutdownComponentSettingData",
              "9F8233AC-BE49-4C79-8EE3-E7E1985B2077"),
    Component(HEARTBEAT, "Msvm_HeartbeatComponentSettingData",
              "57164F39-9115-4E78-AB55-382F3BD5422D"),
    Component(TIME_SYNC, "Msvm_TimeSyncComponentSettingData",
              "2497F4DE-E9FA-4204-80E4-4B75C46419C0"),
    Component(KVP, "Msvm_KvpExchangeComponentSettingData",
              "A9A0F4E7-5A45-4D96-B827-8A841E8C03E6"),
    Component(VSS, "Msvm_VssComponentSettingData", "35FA2E29-EA23-4236-96AE-3A6EBACBA440"),
)
COMPONENT_CLASSES = tuple(c.classname for c in COMPONENTS)
SETTING_CLASSES = tuple(c.settings for c in COMPONENTS)
KVP_SETTINGS = "Msvm_KvpExchangeComponentSettingData"

_FOLLOWS_VM = {HEARTBEAT.lower(), KVP.lower(), VSS.lower()}
_AGENT = {HEARTBEAT.lower(), KVP.lower()}


def device_id(guid: str, comp: Component) -> str:
    return f"Microsoft:{guid}\\{comp.dev_id}"


def component_path(guid: str, comp: Component) -> pywbem.CIMInstanceName:
    return pywbem.CIMInstanceName(comp.classname, keybindings={
        "CreationClassName": comp.classname, "DeviceID": device_id(guid, comp),
        "SystemCreationClassName": names.COMPUTER_SYSTEM, "SystemName": guid,
    }, namespace=names.NAMESPACE)


def settings_path(guid: str, comp: Component) -> pywbem.CIMInstanceName:
    return ids.setting_path(comp.settings, ids.device_id(guid, comp.dev_id))


def by_class(classname: str) -> Component | None:
    want = classname.lower()
    return next((c for c in COMPONENTS if want in (c.classname.lower(), c.settings.lower())),
                None)


def data_item(cls: pywbem.CIMClass, name: str, data: str, source: int) -> str:
    """One Msvm_KvpExchangeDataItem as embedded CIM-XML text."""
    inst = pywbem.CIMInstance(cls.classname)
    for pname, prop in cls.properties.items():
        inst.properties[pname] = pywbem.CIMProperty(pname, prop.value, type=prop.type,
                                                    is_array=prop.is_array)
    inst["Name"], inst["Data"], inst["Source"] = name, data, pywbem.Uint16(source)
    return serialize_instance(inst)


def _fill(cls: pywbem.CIMClass, path: pywbem.CIMInstanceName,
          values: Mapping[str, Any]) -> pywbem.CIMInstance:
    from vsms.mapping.logical_devices import from_class  # (an import cycle otherwise)
    return from_class(cls, path, values)


def component_instance(cls: pywbem.CIMClass, vs: VirtualSystem, state: EnabledState,
                       contact: bool, guest_items: Mapping[str, str] | None = None,
                       item_class: pywbem.CIMClass | None = None) -> pywbem.CIMInstance:
    """The component of class ``cls`` of ``vs`` (running in ``state``; ``contact``: the guest
    agent answers; ``guest_items`` its intrinsic items, for the KVP component)."""
    comp = by_class(cls.classname)
    assert comp is not None
    want = cls.classname.lower()
    values: dict[str, Any] = {}
    if want in _FOLLOWS_VM:
        values["EnabledState"] = 2 if state is EnabledState.ENABLED else 3
    if want in _AGENT:
        values["OperationalStatus"] = [2] if contact else [_NO_CONTACT]
        values["StatusDescriptions"] = ["OK"] if contact else ["No Contact"]
    if want == KVP.lower():
        values["GuestExchangeItems"] = []
        values["GuestIntrinsicExchangeItems"] = [
            data_item(item_class, k, v, SOURCE_INTRINSIC)
            for k, v in sorted((guest_items or {}).items())] if item_class is not None else []
    return _fill(cls, component_path(vs.guid, comp), values)


def settings_instance(cls: pywbem.CIMClass, vs: VirtualSystem,
                      item_class: pywbem.CIMClass) -> pywbem.CIMInstance:
    """The settings instance of class ``cls`` (one of SETTING_CLASSES) of ``vs``."""
    comp = by_class(cls.classname)
    assert comp is not None
    values: dict[str, Any] = {}
    if cls.classname.lower() == KVP_SETTINGS.lower():
        values["HostExchangeItems"] = [data_item(item_class, k, v, SOURCE_HOST)
                                       for k, v in vs.kvp_items.items()]
        values["HostOnlyItems"] = []
    return _fill(cls, settings_path(vs.guid, comp), values)


def export_instance(vs: VirtualSystem) -> pywbem.CIMInstance | None:
    """The KVP settings with the host's items, as an export's .exp keeps them (None when the
    VM has no items: such exports stay as before)."""
    if not vs.kvp_items:
        return None
    comp = next(c for c in COMPONENTS if c.classname == KVP)
    path = settings_path(vs.guid, comp)
    items = [serialize_instance(pywbem.CIMInstance(DATA_ITEM, properties={
        "Name": k, "Data": v, "Source": pywbem.Uint16(SOURCE_HOST)}))
        for k, v in vs.kvp_items.items()]
    inst = pywbem.CIMInstance(KVP_SETTINGS, path=path)
    inst["InstanceID"] = path.keybindings["InstanceID"]
    inst["ElementName"] = "Key-Value Pair Exchange"
    inst.properties["HostExchangeItems"] = pywbem.CIMProperty(
        "HostExchangeItems", items, type="string", is_array=True)
    return inst


def host_items(inst: pywbem.CIMInstance) -> dict[str, str]:
    """The host items an Msvm_KvpExchangeComponentSettingData instance lists (an import's);
    raises a VsmsError (or ValueError) naming a bad entry."""
    out: dict[str, str] = {}
    raw = inst.properties.get("HostExchangeItems")
    for i, text in enumerate(raw.value if raw is not None and raw.value else []):
        where = f"{KVP_SETTINGS}.HostExchangeItems[{i}]"
        item = text if isinstance(text, pywbem.CIMInstance) else parse_instance(
            str(text), what=where)
        if item.classname.lower() != DATA_ITEM.lower():
            raise ValueError(f"{where} is a {item.classname}, not a {DATA_ITEM}")
        name, data = kvp.check_item(item.get("Name"), item.get("Data"), where, kvp.Change.ADD)
        out[name] = data
    return out


def links(vs: VirtualSystem) -> list[tuple[str, dict[str, pywbem.CIMInstanceName]]]:
    """Msvm_SystemDevice from the VM to each component."""
    vm = pywbem.CIMInstanceName(names.COMPUTER_SYSTEM, keybindings={
        "CreationClassName": names.COMPUTER_SYSTEM, "Name": vs.guid}, namespace=names.NAMESPACE)
    return [("Msvm_SystemDevice", {"GroupComponent": vm,
                                   "PartComponent": component_path(vs.guid, c)})
            for c in COMPONENTS]


def setting_links(vs: VirtualSystem) -> list[tuple[str, dict[str, pywbem.CIMInstanceName]]]:
    """Msvm_ElementSettingData from each component to its settings."""
    return [(names.ELEMENT_SETTING_DATA, {"ManagedElement": component_path(vs.guid, c),
                                          "SettingData": settings_path(vs.guid, c)})
            for c in COMPONENTS]


def setting_paths(vs: VirtualSystem) -> list[pywbem.CIMInstanceName]:
    """The settings of every component (parts of the VSSD in
    Msvm_VirtualSystemSettingDataComponent)."""
    return [settings_path(vs.guid, c) for c in COMPONENTS]
