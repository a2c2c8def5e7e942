"""Resource pools, their allocation capabilities and the settings that define them.

One primordial pool per resource subtype that ``mapping.devices.classify`` accepts (memory,
processor, IDE and SCSI controllers, disk and DVD drives, virtual hard disks, ISO images under
the three subtypes clients use for them, synthetic and emulated network adapters). Each pool
has one Msvm_AllocationCapabilities and four settings (RASDs of the class the pool's devices
use) that it defines through Msvm_SettingsDefineCapabilities:
``Microsoft:Definition\\<pool GUID>\\Default`` (ValueRole 0 Default, ValueRange 0 Point) and
``…\\Minimum`` / ``…\\Maximum`` / ``…\\Increment`` (ValueRole 3 Supported, ValueRange 1, 2, 3).

A setting carries exactly the values every device of its kind has: it is built from the RASDs
the service serves for two devices that differ in everything a device can differ in (VM,
device id, quantity, slot, path, MAC, switch), keeping the properties both share and leaving
the others NULL (Parent, Connection, Address, DeviceID, VirtualSystemIdentifiers, a memory
setting's Reservation and Limit, a processor setting's ProcessorsPerSocket). So a client that
sets what it must (Parent, Connection, VirtualQuantity, …) and sends the Default back is
accepted by DefineVirtualSystem / AddVirtualSystemResources, whose RASD check refuses only
values that differ from what the service would serve. VirtualQuantity: memory 512 MB default,
8 MB minimum, the host's memory maximum, 1 MB increment; processors 1, 1, the host's
vCPU limit, 1; every other kind 1 (one device per RASD).

Keys name no VM: a pool is ``Microsoft:Pool\\<pool GUID>\\Root``, its capabilities
``Microsoft:AllocationCapabilities\\<pool GUID>``, the pool GUID derived from the pool's subtype
(``ids.pool_id``). PoolID is that GUID too (bare), except for the two other ISO subtypes' pools
("Microsoft ISO Image", "Microsoft Virtual DVD Disk"): the devices they hand out are the
service's CD/DVD disk images, so their settings and they carry that pool's PoolID, which is
what those devices show.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import pywbem

from vsms.cim import names
from vsms.cim.enums import HealthState, OperationalStatus, ResourceType
from vsms.errors import InvalidParameter
from vsms.mapping import devices, ids, logical_devices
from vsms.mapping.checks import MIN_MEMORY_MB, Limits
from vsms.model.vm import (
    Controller,
    ControllerKind,
    Drive,
    DriveKind,
    ImageFormat,
    Media,
    NetworkAdapter,
    VirtualSystem,
)

RESOURCE_POOL = "Msvm_ResourcePool"
PROCESSOR_POOL = "Msvm_ProcessorPool"
ALLOCATION_CAPABILITIES = "Msvm_AllocationCapabilities"
ELEMENT_CAPABILITIES = "Msvm_ElementCapabilities"
SETTINGS_DEFINE_CAPABILITIES = "Msvm_SettingsDefineCapabilities"
ELEMENT_ALLOCATED_FROM_POOL = "Msvm_ElementAllocatedFromPool"
RESOURCE_ALLOCATION_FROM_POOL = "Msvm_ResourceAllocationFromPool"
HOSTED_RESOURCE_POOL = "Msvm_HostedResourcePool"

DEFINITION_PREFIX = "Microsoft:Definition\\"
CAPABILITIES_CAPTION = "Microsoft Virtual Machine Resource Pool Allocation Capabilities"

class GoalReturn(IntEnum):
    """Msvm_AllocationCapabilities.CreateGoalSettings return values (DMTF's, not Hyper-V's)."""

    SUCCESS = 0
    INVALID_PARAMETER = 5
    ALTERNATIVE_PROPOSED = 6


#: ValueRole / ValueRange of each defining setting (the page's pairs)
ROLES: dict[str, tuple[int, int]] = {
    "Default": (0, 0), "Minimum": (3, 1), "Maximum": (3, 2), "Increment": (3, 3)}


@dataclass(frozen=True)
class Pool:
    """One primordial pool: the RASDs of subtype ``subtype`` are allocated from it."""

    subtype: str
    rtype: ResourceType
    setting_class: str  # the class of its RASDs
    served_subtype: str  # the subtype the service shows on a device from it
    name: str  # Caption, ElementName and Name of the pool
    units: str  # AllocationUnits of the pool

    @property
    def key(self) -> str:
        """The GUID in the pool's own keys (its InstanceID, its capabilities', its settings')."""
        return ids.pool_id(self.subtype)

    @property
    def pool_id(self) -> str:
        """PoolID: what the RASDs of the devices it hands out name (the ISO subtypes' pools
        hand out devices of one kind, so they share the Virtual CD/DVD Disk pool's)."""
        return ids.pool_id(self.served_subtype)

    @property
    def classname(self) -> str:
        return PROCESSOR_POOL if self.rtype is ResourceType.PROCESSOR else RESOURCE_POOL

    @property
    def instance_id(self) -> str:
        return f"Microsoft:Pool\\{self.key}\\Root"

    @property
    def capabilities_id(self) -> str:
        return f"Microsoft:AllocationCapabilities\\{self.key}"

    def setting_id(self, role: str) -> str:
        return f"{DEFINITION_PREFIX}{self.key}\\{role}"

    def path(self) -> pywbem.CIMInstanceName:
        return pywbem.CIMInstanceName(self.classname, {"InstanceID": self.instance_id},
                                      namespace=names.NAMESPACE)

    def capabilities_path(self) -> pywbem.CIMInstanceName:
        return pywbem.CIMInstanceName(ALLOCATION_CAPABILITIES,
                                      {"InstanceID": self.capabilities_id},
                                      namespace=names.NAMESPACE)

    def setting_path(self, role: str) -> pywbem.CIMInstanceName:
        return ids.setting_path(self.setting_class, self.setting_id(role))


_RT = ResourceType
POOLS: tuple[Pool, ...] = (
    Pool(devices.SUB_PROCESSOR, _RT.PROCESSOR, names.PROCESSOR_SD, devices.SUB_PROCESSOR,
         "Processor Resource Pool", "Processor Cores"),
    Pool(devices.SUB_MEMORY, _RT.MEMORY, names.MEMORY_SD, devices.SUB_MEMORY,
         "Memory Resource Pool", "Megabyte"),
    Pool(devices.SUB_IDE, _RT.IDE_CONTROLLER, names.RASD, devices.SUB_IDE,
         "IDE Controller Resource Pool", "Controllers"),
    Pool(devices.SUB_SCSI, _RT.PARALLEL_SCSI_HBA, names.RASD, devices.SUB_SCSI,
         "SCSI Controller Resource Pool", "Controllers"),
    Pool(devices.SUB_DISK_DRIVE, _RT.DISK, names.RASD, devices.SUB_DISK_DRIVE,
         "Disk Drive Resource Pool", "Disk drives"),
    Pool(devices.SUB_DVD_DRIVE, _RT.DVD_DRIVE, names.RASD, devices.SUB_DVD_DRIVE,
         "DVD Drive Resource Pool", "DVD drives"),
    Pool(devices.SUB_VHD, _RT.STORAGE_EXTENT, names.RASD, devices.SUB_VHD,
         "Virtual Hard Disk Resource Pool", "Disks"),
    Pool(devices.SUB_ISO, _RT.STORAGE_EXTENT, names.RASD, devices.SUB_ISO,
         "Virtual CD/DVD Disk Resource Pool", "Disks"),
    Pool("Microsoft ISO Image", _RT.STORAGE_EXTENT, names.RASD, devices.SUB_ISO,
         "ISO Image Resource Pool", "Disks"),
    Pool("Microsoft Virtual DVD Disk", _RT.STORAGE_EXTENT, names.RASD, devices.SUB_ISO,
         "Virtual DVD Disk Resource Pool", "Disks"),
    Pool(devices.SUB_SYNTHETIC_NIC, _RT.ETHERNET_ADAPTER, names.SYNTHETIC_NIC_SD,
         devices.SUB_SYNTHETIC_NIC, "Synthetic Ethernet Port Resource Pool", "Ports"),
    Pool(devices.SUB_EMULATED_NIC, _RT.ETHERNET_ADAPTER, names.EMULATED_NIC_SD,
         devices.SUB_EMULATED_NIC, "Emulated Ethernet Port Resource Pool", "Ports"),
    # every VM has its COM 1 and COM 2 (modified, never added): the Default is a template to
    # read, as for the IDE controllers
    Pool(devices.SUB_SERIAL_PORT, _RT.SERIAL_PORT, names.RASD, devices.SUB_SERIAL_PORT,
         "Serial Port Resource Pool", "Serial Ports"),
)

_BY_KEY = {p.key: p for p in POOLS}
_BY_SERVED = {p.subtype.lower(): p for p in POOLS if p.subtype == p.served_subtype}


def pool_of_key(key: str) -> Pool | None:
    """The pool whose keys carry GUID ``key``."""
    return _BY_KEY.get(key.strip().upper())


def pool_of_rasd(rasd: pywbem.CIMInstance) -> Pool | None:
    """The pool a served RASD (of a VM) is allocated from, by its ResourceSubType."""
    sub = devices.prop(rasd, "ResourceSubType")
    return _BY_SERVED.get(sub.lower()) if isinstance(sub, str) else None


def parse_setting_id(instance_id: str) -> tuple[Pool, str] | None:
    """(pool, role) of a defining setting's InstanceID, or None when it is not one."""
    if instance_id[:len(DEFINITION_PREFIX)].lower() != DEFINITION_PREFIX.lower():
        return None
    parts = instance_id[len(DEFINITION_PREFIX):].split("\\")
    if len(parts) != 2:
        return None
    pool = pool_of_key(parts[0])
    role = next((r for r in ROLES if r.lower() == parts[1].lower()), None)
    return (pool, role) if pool is not None and role is not None else None


# ---------------------------------------------------------------------------- instances
def _build(classname: str, path: pywbem.CIMInstanceName,
           values: dict[str, tuple[Any, str]]) -> pywbem.CIMInstance:
    inst = pywbem.CIMInstance(classname, path=path)
    for name, (value, cimtype) in values.items():
        array = cimtype.endswith("[]")
        inst.properties[name] = pywbem.CIMProperty(name, value, type=cimtype.rstrip("[]"),
                                                   is_array=array)
    return inst


def pool_instance(pool: Pool, *, capacity: int | None, reserved: int | None
                  ) -> pywbem.CIMInstance:
    """The pool as Msvm_ResourcePool (Msvm_ProcessorPool for processors) shows it."""
    processor = pool.classname == PROCESSOR_POOL
    description = ("Resource Pool used to allocate Microsoft Virtual Processor Pool resources "
                   "to a virtual machine" if processor else
                   f"Resource Pool used to allocate {pool.subtype} resources to a virtual "
                   "machine")
    u64 = pywbem.Uint64
    return _build(pool.classname, pool.path(), {
        "InstanceID": (pool.instance_id, "string"),
        "Caption": (pool.name, "string"),
        "Description": (description, "string"),
        "ElementName": (pool.name, "string"),
        "Name": (pool.name, "string"),
        "InstallDate": (None, "datetime"),
        "OperationalStatus": ([pywbem.Uint16(OperationalStatus.OK)], "uint16[]"),
        "StatusDescriptions": (["OK"], "string[]"),
        "Status": (None, "string"),
        "HealthState": (pywbem.Uint16(HealthState.OK), "uint16"),
        "PoolID": (pool.pool_id, "string"),
        "Primordial": (True, "boolean"),
        "Capacity": (None if capacity is None else u64(capacity), "uint64"),
        "Reserved": (None if reserved is None else u64(reserved), "uint64"),
        "ResourceType": (pywbem.Uint16(pool.rtype), "uint16"),
        "OtherResourceType": (None, "string"),
        "ResourceSubType": (pool.subtype, "string"),
        "AllocationUnits": (pool.units, "string"),
    })


def capabilities_instance(pool: Pool) -> pywbem.CIMInstance:
    """The pool's Msvm_AllocationCapabilities."""
    return _build(ALLOCATION_CAPABILITIES, pool.capabilities_path(), {
        "InstanceID": (pool.capabilities_id, "string"),
        "Caption": (CAPABILITIES_CAPTION, "string"),
        "Description": (CAPABILITIES_CAPTION, "string"),
        "ElementName": (f"{pool.name} Allocation Capabilities", "string"),
        "ResourceType": (pywbem.Uint16(pool.rtype), "uint16"),
        "OtherResourceType": (None, "string"),
        "ResourceSubType": (pool.subtype, "string"),
        "RequestTypesSupported": (pywbem.Uint16(3), "uint16"),  # Both (a slot or any)
        "SharingMode": (None, "uint16"),  # not used
        "SupportedAddStates": (None, "uint16[]"),  # not used
        "SupportedRemoveStates": (None, "uint16[]"),  # not used
    })


def _sample(n: int) -> VirtualSystem:
    """A VM with one device of every kind; samples 0 and 1 differ in every particular."""
    def guid(k: int) -> str:
        return f"{n:08X}-0000-4000-8000-{k:012X}"
    vs = VirtualSystem(guid(0), f"sample {n}", memory_mb=512 + n, processors=1 + n,
                       memory_dev_id=guid(1), processor_dev_id=guid(2))
    vs.controllers = [Controller(guid(3), ControllerKind.IDE, n),
                      Controller(guid(4), ControllerKind.SCSI, n)]
    vs.drives = [Drive(guid(5), DriveKind.DISK, guid(3), n),
                 Drive(guid(6), DriveKind.DVD, guid(3), 1 - n)]
    vs.media = [Media(guid(7), guid(5), f"/sample{n}/disk.vhd", ImageFormat.VHD),
                Media(guid(8), guid(6), f"/sample{n}/cd.iso", ImageFormat.RAW)]
    vs.nics = [NetworkAdapter(guid(9), f"00:15:5D:00:00:0{n}", f"switch{n}", True, False),
               NetworkAdapter(guid(10), f"00:15:5D:00:01:0{n}", f"switch{n}", False, False)]
    return vs


def _common(subtype: str) -> pywbem.CIMInstance:
    """The served RASD of a device of ``subtype`` with what differs between devices NULL
    (a copy of the one computed once per process: it depends on nothing but the code)."""
    return _common_once(subtype.lower()).copy()


@functools.cache
def _common_once(subtype: str) -> pywbem.CIMInstance:
    a, b = (next(i for i in devices.device_instances(_sample(n))
                 if str(devices.prop(i, "ResourceSubType")).lower() == subtype)
            for n in (0, 1))
    out = a.copy()
    for name, p in a.properties.items():
        if p.value != devices.prop(b, name):
            out.properties[name] = pywbem.CIMProperty(name, None, type=p.type,
                                                      is_array=p.is_array)
    return out


def _quantities(pool: Pool, limits: Limits) -> dict[str, int]:
    if pool.rtype is ResourceType.MEMORY:
        default = VirtualSystem("", "").memory_mb
        return {"Default": default, "Minimum": MIN_MEMORY_MB,
                "Maximum": limits.max_memory_mb, "Increment": 1}
    if pool.rtype is ResourceType.PROCESSOR:
        default = VirtualSystem("", "").processors
        return {"Default": default, "Minimum": 1, "Maximum": limits.max_processors,
                "Increment": 1}
    return dict.fromkeys(ROLES, 1)


def setting_instance(pool: Pool, role: str, limits: Limits) -> pywbem.CIMInstance:
    """The pool's ``role`` setting (Default, Minimum, Maximum or Increment)."""
    inst = _common(pool.served_subtype)
    inst.path = pool.setting_path(role)
    inst["InstanceID"] = pool.setting_id(role)
    inst["ResourceSubType"] = pool.subtype
    inst["PoolID"] = pool.pool_id
    inst.properties["VirtualQuantity"] = pywbem.CIMProperty(
        "VirtualQuantity", pywbem.Uint64(_quantities(pool, limits)[role]), type="uint64")
    return inst


def goal(pool: Pool, template: pywbem.CIMInstance | None, limits: Limits
         ) -> tuple[pywbem.CIMInstance, bool]:
    """CreateGoalSettings: the pool's Default with the non-NULL values of ``template`` over it
    and VirtualQuantity brought into the pool's range; (that setting, True when it had to
    differ from the template). InvalidParameter for a template of another kind or with a
    property the pool's settings do not have."""
    out = setting_instance(pool, "Default", limits)
    if template is None:
        return out, False
    rtype = devices.prop(template, "ResourceType")
    sub = devices.prop(template, "ResourceSubType")
    try:
        other_type = rtype is not None and int(rtype) != pool.rtype
    except (TypeError, ValueError):
        other_type = True
    if other_type or (not devices.blank(sub) and str(sub).strip().lower() != pool.subtype.lower()):
        raise InvalidParameter(
            f"{devices.label(template)} is not a setting of this pool: give ResourceType "
            f"{int(pool.rtype)} and ResourceSubType {pool.subtype!r}, or no template")
    for name, p in template.properties.items():
        if p.value is None or name.lower() in ("instanceid", "poolid"):
            continue
        if name not in out.properties:
            raise InvalidParameter(f"{devices.label(template)}: a {pool.subtype} setting has no "
                                   f"property {name}")
        out.properties[name] = p.copy()
    asked = devices.prop(out, "VirtualQuantity")
    try:
        quantity = int(asked)
    except (TypeError, ValueError):
        raise InvalidParameter(f"{devices.label(template)}: VirtualQuantity {asked!r} is not a "
                               "number") from None
    bounds = _quantities(pool, limits)
    fitted = min(max(quantity, bounds["Minimum"]), bounds["Maximum"])
    out.properties["VirtualQuantity"] = pywbem.CIMProperty(
        "VirtualQuantity", pywbem.Uint64(fitted), type="uint64")
    return out, fitted != quantity


def setting_instances(limits: Limits) -> list[pywbem.CIMInstance]:
    """The four defining settings of every pool."""
    return [setting_instance(p, role, limits) for p in POOLS for role in ROLES]


def define_capabilities(pool: Pool) -> list[pywbem.CIMInstance]:
    """The pool's Msvm_SettingsDefineCapabilities, one per defining setting."""
    return [_association(SETTINGS_DEFINE_CAPABILITIES, {
        "GroupComponent": pool.capabilities_path(), "PartComponent": pool.setting_path(role)},
        {"PropertyPolicy": pywbem.Uint16(0), "ValueRole": pywbem.Uint16(vrole),
         "ValueRange": pywbem.Uint16(vrange)}) for role, (vrole, vrange) in ROLES.items()]


def element_capabilities(pool: Pool) -> pywbem.CIMInstance:
    return _association(ELEMENT_CAPABILITIES, {"ManagedElement": pool.path(),
                                               "Capabilities": pool.capabilities_path()})


def hosted_pool(pool: Pool, host: pywbem.CIMInstanceName) -> pywbem.CIMInstance:
    return _association(HOSTED_RESOURCE_POOL, {"GroupComponent": host,
                                               "PartComponent": pool.path()})


def allocations(vs: VirtualSystem) -> list[pywbem.CIMInstance]:
    """Msvm_ResourceAllocationFromPool of each of the VM's RASDs."""
    out = []
    for rasd in devices.device_instances(vs):
        pool = pool_of_rasd(rasd)
        if pool is not None and rasd.path is not None:
            out.append(_association(RESOURCE_ALLOCATION_FROM_POOL,
                                    {"Antecedent": pool.path(), "Dependent": rasd.path}))
    return out


def element_allocations(vs: VirtualSystem) -> list[pywbem.CIMInstance]:
    """Msvm_ElementAllocatedFromPool of each of the VM's logical devices that has a RASD: the
    device and the primordial pool its RASD draws from."""
    by_rasd: dict[str, Pool] = {}
    for rasd in devices.device_instances(vs):
        pool = pool_of_rasd(rasd)
        if pool is not None and rasd.path is not None:
            by_rasd[str(rasd.path.keybindings["InstanceID"]).upper()] = pool
    out = []
    for dev in logical_devices.devices(vs):
        pool = by_rasd.get((dev.rasd or "").upper())
        if pool is not None:
            out.append(_association(ELEMENT_ALLOCATED_FROM_POOL, {
                "Antecedent": pool.path(),
                "Dependent": logical_devices.device_path(vs.guid, dev.classname, dev.device_id)}))
    return out


def reserved(systems: Sequence[VirtualSystem], running: Sequence[VirtualSystem]
             ) -> dict[str, int]:
    """Pool key -> how many of its units are held: memory, the MB of the ``running`` VMs;
    processors 0 (as the page says); the others, the devices of all ``systems``."""
    out = dict.fromkeys((p.key for p in POOLS), 0)
    for vs in systems:
        for rasd in devices.device_instances(vs):
            pool = pool_of_rasd(rasd)
            if pool is not None and pool.rtype not in (ResourceType.MEMORY,
                                                       ResourceType.PROCESSOR):
                out[pool.key] += 1
    memory = next(p for p in POOLS if p.rtype is ResourceType.MEMORY)
    out[memory.key] = sum(vs.memory_mb for vs in running)
    return out


def _association(classname: str, refs: dict[str, pywbem.CIMInstanceName],
                 values: dict[str, Any] | None = None) -> pywbem.CIMInstance:
    path = pywbem.CIMInstanceName(classname, keybindings=dict(refs), namespace=names.NAMESPACE)
    inst = pywbem.CIMInstance(classname, path=path)
    for name, ref in refs.items():
        inst.properties[name] = pywbem.CIMProperty(name, ref, type="reference",
                                                   reference_class=ref.classname)
    for name, value in (values or {}).items():
        inst[name] = value
    return inst
