"""Resource pools, allocation capabilities and default settings, the way a Hyper-V v1 client
uses them, over CIM-XML (pywbem) against a real ``vsms serve`` on qemu:///system.

The client side follows the reference pages (common-utilities-for-the-virtualization-samples:
GetResourceAllocationsettingDataDefault): find the pool with ``SELECT * FROM Msvm_ResourcePool
WHERE ResourceType = '…' AND ResourceSubType = '…' AND OtherResourceType = null``, go to its
Msvm_AllocationCapabilities, take the Msvm_SettingsDefineCapabilities whose ValueRole is 0
(Default), read its PartComponent, change what must be changed and pass it on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import pywbem

from tests.cli.served import Served, add_user, make_root, serving
from tests.conftest import QEMU_URI
from tests.e2e.wbemflow import completed, create_vhd, invoke, modify, settings_of
from tests.lifecycle.service import make_iso
from vsms.cim import names
from vsms.cim.embedded import parse_instance
from vsms.cim.enums import ReturnCode
from vsms.cim.schema import load_classes
from vsms.errors import VsmsError
from vsms.mapping import components as mc
from vsms.mapping.devices import classify
from vsms.mapping.pools import GoalReturn
from vsms.virt.adopt import instance_id
from vsms.virt.host import VirtHost

POOL = "Msvm_ResourcePool"
PROCESSOR_POOL = "Msvm_ProcessorPool"
CAPS = "Msvm_AllocationCapabilities"
ELEMENT_CAPS = "Msvm_ElementCapabilities"
DEFINE_CAPS = "Msvm_SettingsDefineCapabilities"
FROM_POOL = "Msvm_ResourceAllocationFromPool"
HOSTED_POOL = "Msvm_HostedResourcePool"

# Every (ResourceType, ResourceSubType) a v1 client may ask for (the sample utilities' table
# and the RASD page), and whether vsms builds such devices.
HYPERV_SUBTYPES = {
    "Microsoft Processor": 3, "Microsoft Virtual Machine Memory": 4,
    "Microsoft Emulated IDE Controller": 5, "Microsoft Synthetic SCSI Controller": 6,
    "Microsoft Synthetic Disk Drive": 22, "Microsoft Physical Disk Drive": 22,
    "Microsoft Synthetic DVD Drive": 16, "Microsoft Physical DVD Drive": 16,
    "Microsoft Synthetic CD Drive": 15, "Microsoft Physical CD Drive": 15,
    "Microsoft Virtual Hard Disk": 21, "Microsoft Virtual CD/DVD Disk": 21,
    "Microsoft ISO Image": 21, "Microsoft Virtual DVD Disk": 21,
    "Microsoft Virtual Floppy Disk": 21, "Microsoft Synthetic Diskette Drive": 14,
    "Microsoft Synthetic Ethernet Port": 10, "Microsoft Emulated Ethernet Port": 10,
    "Microsoft Synthetic Display Controller": 20, "Microsoft Serial Port": 17,
    "Microsoft Synthetic Mouse": 13,
}
GUID = "[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}"
SETTING_CLASS = {"Microsoft Processor": names.PROCESSOR_SD,
                 "Microsoft Virtual Machine Memory": names.MEMORY_SD,
                 "Microsoft Synthetic Ethernet Port": names.SYNTHETIC_NIC_SD,
                 "Microsoft Emulated Ethernet Port": names.EMULATED_NIC_SD}


@dataclass
class Server:
    served: Served
    reader_password: str

    def admin(self) -> pywbem.WBEMConnection:
        return pywbem.WBEMConnection(self.served.url, (self.served.user, self.served.password),
                                     default_namespace=names.NAMESPACE, timeout=120)

    def reader(self) -> pywbem.WBEMConnection:
        return pywbem.WBEMConnection(self.served.url, ("pool-reader", self.reader_password),
                                     default_namespace=names.NAMESPACE, timeout=120)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    root = make_root()
    state = root / "state"
    state.mkdir()
    reader = add_user(state, "pool-reader", "reader")
    with serving(root, state, [root], QEMU_URI) as served:
        yield Server(served, reader)


@pytest.fixture(scope="module")
def conn(server: Server) -> pywbem.WBEMConnection:
    return server.admin()


def pool_of(conn: pywbem.WBEMConnection, rtype: int, subtype: str) -> pywbem.CIMInstance:
    """The sample utilities' query, answered by exactly one pool."""
    cls = PROCESSOR_POOL if rtype == 3 else POOL
    found = conn.ExecQuery("WQL", f"select * from {cls} where ResourceType = '{rtype}' and "
                                  f"ResourceSubType ='{subtype}' and OtherResourceType = null")
    assert len(found) == 1, (rtype, subtype, found)
    return found[0]


def defining(conn: pywbem.WBEMConnection, pool: pywbem.CIMInstance
             ) -> dict[tuple[int, int], pywbem.CIMInstance]:
    """(ValueRole, ValueRange) -> setting, through the pool's one allocation capabilities."""
    caps = conn.Associators(pool.path, AssocClass=ELEMENT_CAPS, ResultClass=CAPS)
    assert len(caps) == 1, caps
    out = {}
    for link in conn.References(caps[0].path, ResultClass=DEFINE_CAPS):
        assert link["PropertyPolicy"] == 0
        out[(int(link["ValueRole"]), int(link["ValueRange"]))] = conn.GetInstance(
            link["PartComponent"])
    assert set(out) == {(0, 0), (3, 1), (3, 2), (3, 3)}, sorted(out)
    return out


def default_of(conn: pywbem.WBEMConnection, rtype: int, subtype: str) -> pywbem.CIMInstance:
    return defining(conn, pool_of(conn, rtype, subtype))[(0, 0)]


def add(conn: pywbem.WBEMConnection, vm: pywbem.CIMInstanceName,
        rasd: pywbem.CIMInstance) -> pywbem.CIMInstanceName:
    out = completed(conn, *invoke(conn, names.VSMS, "AddVirtualSystemResources",
                                  TargetSystem=vm, ResourceSettingData=[rasd.tocimxmlstr()]))
    assert len(out["NewResources"]) == 1
    new: pywbem.CIMInstanceName = out["NewResources"][0]
    return new


def ids(found: list[pywbem.CIMInstance] | list[pywbem.CIMInstanceName]) -> list[str]:
    """The InstanceIDs of instances or paths (host and namespace left aside), sorted."""
    return sorted(str((i if isinstance(i, pywbem.CIMInstanceName) else i.path)
                      .keybindings["InstanceID"]) for i in found)


def all_pools(conn: pywbem.WBEMConnection) -> list[pywbem.CIMInstance]:
    found: list[pywbem.CIMInstance] = conn.EnumerateInstances("CIM_ResourcePool")
    return found


def test_one_primordial_pool_per_subtype_the_service_accepts(conn: pywbem.WBEMConnection
                                                             ) -> None:
    pools = all_pools(conn)
    by_subtype = {p["ResourceSubType"]: p for p in pools}
    assert len(by_subtype) == len(pools)
    for subtype, rtype in HYPERV_SUBTYPES.items():
        probe = pywbem.CIMInstance(names.RASD, properties={
            "ResourceType": pywbem.Uint16(rtype), "ResourceSubType": subtype})
        try:
            classify(probe)
            accepted = True
        except VsmsError:
            accepted = False
        assert (subtype in by_subtype) == accepted, subtype
        if accepted:
            pool = by_subtype[subtype]
            assert pool["ResourceType"] == rtype and pool["OtherResourceType"] is None
            assert pool["Primordial"] is True and pool["HealthState"] == 5
            assert pool["OperationalStatus"] == [2] and pool["StatusDescriptions"] == ["OK"]
            assert pool.classname == (PROCESSOR_POOL if rtype == 3 else POOL)
            assert re.fullmatch(rf"Microsoft:Pool\\{GUID}\\Root", pool["InstanceID"])
            assert re.fullmatch(GUID, pool["PoolID"])
    # one PoolID per kind of device: the three ISO subtypes hand out the same images
    iso = {by_subtype[s]["PoolID"] for s in ("Microsoft Virtual CD/DVD Disk",
                                             "Microsoft ISO Image", "Microsoft Virtual DVD Disk")}
    assert len(iso) == 1 and len({p["PoolID"] for p in pools}) == len(pools) - 2
    processor = by_subtype["Microsoft Processor"]
    assert (processor["ElementName"], processor["AllocationUnits"], processor["Capacity"],
            processor["Reserved"]) == ("Processor Resource Pool", "Processor Cores", 100000, 0)
    rv, _ = conn.InvokeMethod("CalculatePossibleReserve", processor.path,
                              ProcessorCount=pywbem.Uint16(2))
    assert rv == 0  # as on Windows Server 2008


def test_v1_client_builds_a_vm_from_the_default_settings(server: Server,
                                                         conn: pywbem.WBEMConnection) -> None:
    root = server.served.root
    name = f"pools-{root.name}"
    # memory and processors from their defaults, passed to DefineVirtualSystem
    memory = default_of(conn, 4, "Microsoft Virtual Machine Memory")
    memory["VirtualQuantity"] = pywbem.Uint64(192)
    cpus = default_of(conn, 3, "Microsoft Processor")
    gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": name})
    out = completed(conn, *invoke(conn, names.VSMS, "DefineVirtualSystem",
                                  SystemSettingData=gsd.tocimxmlstr(),
                                  ResourceSettingData=[memory.tocimxmlstr(),
                                                       cpus.tocimxmlstr()]))
    vm: pywbem.CIMInstanceName = out["DefinedSystem"]
    assert settings_of(conn, vm, names.MEMORY_SD)[0]["VirtualQuantity"] == 192

    # an IDE disk drive and a VHD in it, a synthetic NIC: each from its pool's Default
    ide0 = [r for r in settings_of(conn, vm) if r["ResourceType"] == 5 and r["Address"] == "0"]
    drive = default_of(conn, 22, "Microsoft Synthetic Disk Drive")
    assert drive["Parent"] is None and drive["Address"] is None
    drive["Parent"] = ide0[0].path.to_wbem_uri()
    drive_path = add(conn, vm, drive)
    disk = root / "pools-disk.vhd"
    create_vhd(conn, disk)
    image = default_of(conn, 21, "Microsoft Virtual Hard Disk")
    assert image["Connection"] is None
    image["Parent"] = drive_path.to_wbem_uri()
    image["Connection"] = [str(disk)]
    image_path = add(conn, vm, image)
    nic_path = add(conn, vm, default_of(conn, 10, "Microsoft Synthetic Ethernet Port"))

    # memory and processors changed later on the VM's own settings
    mem = settings_of(conn, vm, names.MEMORY_SD)[0]
    mem["VirtualQuantity"] = pywbem.Uint64(256)
    modify(conn, vm, mem)
    cpu = settings_of(conn, vm, names.PROCESSOR_SD)[0]
    cpu["VirtualQuantity"] = pywbem.Uint64(2)
    modify(conn, vm, cpu)

    rasds = settings_of(conn, vm)
    by_path = {str(r.path.keybindings["InstanceID"]): r for r in rasds}
    assert by_path[str(image_path.keybindings["InstanceID"])]["Connection"] == [str(disk)]
    parent = by_path[str(drive_path.keybindings["InstanceID"])]["Parent"]
    assert str(ide0[0].path.keybindings["InstanceID"]).replace("\\", "\\\\") in parent
    nic = by_path[str(nic_path.keybindings["InstanceID"])]
    assert nic.classname == names.SYNTHETIC_NIC_SD and nic["Address"]
    assert settings_of(conn, vm, names.MEMORY_SD)[0]["VirtualQuantity"] == 256
    assert settings_of(conn, vm, names.PROCESSOR_SD)[0]["VirtualQuantity"] == 2
    with VirtHost(QEMU_URI) as host:
        vs = host.get_system(str(vm.keybindings["Name"]))
    assert vs is not None
    assert (vs.memory_mb, vs.processors) == (256, 2)
    assert [m.path for m in vs.media] == [str(disk)] and len(vs.nics) == 1

    # every RASD of the VM is allocated from the pool its PoolID names, seen both ways
    pools = {(p["PoolID"], p["ResourceSubType"]): p for p in all_pools(conn)}
    for rasd in rasds:
        if rasd.classname in mc.SETTING_CLASSES:  # integration components: no pool
            continue
        found = conn.Associators(rasd.path, AssocClass=FROM_POOL, Role="Dependent",
                                 ResultRole="Antecedent")
        assert [p["PoolID"] for p in found] == [rasd["PoolID"]], rasd.path
        assert found[0]["ResourceSubType"] == rasd["ResourceSubType"]
        back = conn.References(pools[rasd["PoolID"], rasd["ResourceSubType"]].path,
                               ResultClass=FROM_POOL,
                               Role="Antecedent")
        assert rasd["InstanceID"] in [r["Dependent"].keybindings["InstanceID"] for r in back]


def test_default_settings_found_by_instance_id_query(conn: pywbem.WBEMConnection) -> None:
    found = conn.ExecQuery("WQL", "SELECT * FROM Msvm_ResourceAllocationSettingData "
                                  "WHERE InstanceID LIKE '%Default'")
    rasd_pools = [p for p in all_pools(conn) if p["ResourceType"] not in (3, 4, 10)]
    assert sorted(str(i["ResourceSubType"]) for i in found) == \
        sorted(str(p["ResourceSubType"]) for p in rasd_pools)
    for inst in found:
        assert re.fullmatch(rf"Microsoft:Definition\\{GUID}\\Default", inst["InstanceID"])
    every = conn.ExecQuery("WQL", "SELECT * FROM CIM_ResourceAllocationSettingData "
                                  "WHERE InstanceID LIKE '%Default'")
    assert len(every) == len(all_pools(conn))
    # the form OpenStack's v1 driver uses
    nova = conn.ExecQuery("WQL", "SELECT * FROM Msvm_ResourceAllocationSettingData WHERE "
                                 "ResourceSubType = 'Microsoft Synthetic Disk Drive' AND "
                                 "InstanceID LIKE '%\\\\Default'")
    assert len(nova) == 1 and nova[0]["ResourceType"] == 22


def test_associations_both_ways(conn: pywbem.WBEMConnection) -> None:
    host = [h.path for h in conn.EnumerateInstances(names.COMPUTER_SYSTEM)
            if h["Caption"] == "Hosting Computer System"]
    assert len(host) == 1
    hosted = conn.Associators(host[0], AssocClass=HOSTED_POOL, Role="GroupComponent",
                              ResultRole="PartComponent")
    assert ids(hosted) == ids(all_pools(conn))
    for pool in all_pools(conn):
        back = conn.Associators(pool.path, AssocClass=HOSTED_POOL, Role="PartComponent")
        assert [h.path.keybindings["Name"] for h in back] == [host[0].keybindings["Name"]]
        caps = conn.Associators(pool.path, AssocClass=ELEMENT_CAPS, Role="ManagedElement",
                                ResultRole="Capabilities")
        assert len(caps) == 1
        assert (caps[0]["ResourceType"], caps[0]["ResourceSubType"]) == \
            (pool["ResourceType"], pool["ResourceSubType"])
        assert ids(conn.Associators(caps[0].path, AssocClass=ELEMENT_CAPS,
                                    Role="Capabilities")) == ids([pool])
        settings = defining(conn, pool)
        for (role, rng), setting in settings.items():
            assert setting.classname == SETTING_CLASS.get(pool["ResourceSubType"], names.RASD)
            assert setting["PoolID"] == pool["PoolID"]
            assert setting["ResourceSubType"] == pool["ResourceSubType"]
            back = conn.References(setting.path, ResultClass=DEFINE_CAPS, Role="PartComponent")
            assert [(r["ValueRole"], r["ValueRange"]) for r in back] == [(role, rng)]
            assert ids(conn.Associators(setting.path, AssocClass=DEFINE_CAPS,
                                        ResultRole="GroupComponent")) == ids(caps)
        assert conn.Associators(pool.path, AssocClass=ELEMENT_CAPS, Role="Capabilities") == []


def test_maximums_are_the_hosts(conn: pywbem.WBEMConnection) -> None:
    with VirtHost(QEMU_URI) as host:
        limits = host.limits()
    memory = defining(conn, pool_of(conn, 4, "Microsoft Virtual Machine Memory"))
    cpus = defining(conn, pool_of(conn, 3, "Microsoft Processor"))
    assert memory[(3, 2)]["VirtualQuantity"] == limits.max_memory_mb
    assert cpus[(3, 2)]["VirtualQuantity"] == limits.max_processors
    assert (memory[(0, 0)]["VirtualQuantity"], memory[(3, 1)]["VirtualQuantity"],
            memory[(3, 3)]["VirtualQuantity"]) == (512, 8, 1)
    assert (cpus[(0, 0)]["VirtualQuantity"], cpus[(3, 1)]["VirtualQuantity"]) == (1, 1)
    pool = pool_of(conn, 4, "Microsoft Virtual Machine Memory")
    assert pool["Capacity"] == limits.max_memory_mb and pool["AllocationUnits"] == "Megabyte"
    # one more than the maximum is refused with the validator's words
    too_many = memory[(3, 2)].copy()
    too_many["VirtualQuantity"] = pywbem.Uint64(limits.max_memory_mb + 1)
    gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": "pools-too-big"})
    rv, out = invoke(conn, names.VSMS, "DefineVirtualSystem",
                     SystemSettingData=gsd.tocimxmlstr(),
                     ResourceSettingData=[too_many.tocimxmlstr()])
    assert rv == ReturnCode.INVALID_PARAMETER, out
    assert str(limits.max_memory_mb) in out["ErrorDescription"]


def test_a_reader_reads_all_of_it(server: Server, conn: pywbem.WBEMConnection) -> None:
    reader = server.reader()
    for cls in ("CIM_ResourcePool", CAPS, ELEMENT_CAPS, DEFINE_CAPS, HOSTED_POOL):
        assert sorted(str(i) for i in reader.EnumerateInstanceNames(cls)) == \
            sorted(str(i) for i in conn.EnumerateInstanceNames(cls)), cls
    default = default_of(reader, 22, "Microsoft Synthetic Disk Drive")
    assert default["InstanceID"].endswith("\\Default")
    assert len(reader.ExecQuery("WQL", "SELECT * FROM Msvm_ResourceAllocationSettingData "
                                       "WHERE InstanceID LIKE '%Default'")) > 0


def test_unknown_setting_and_pool_are_not_found(conn: pywbem.WBEMConnection) -> None:
    pool = pool_of(conn, 22, "Microsoft Synthetic Disk Drive")
    for path in (
        pywbem.CIMInstanceName(names.RASD, {"InstanceID": f"Microsoft:Definition\\"
                                                          f"{pool['PoolID']}\\Optimal"}),
        pywbem.CIMInstanceName(names.MEMORY_SD, {"InstanceID": f"Microsoft:Definition\\"
                                                               f"{pool['PoolID']}\\Default"}),
        pywbem.CIMInstanceName(POOL, {"InstanceID": "Microsoft:Pool\\nothing\\Root"}),
    ):
        with pytest.raises(pywbem.CIMError) as err:
            conn.GetInstance(path)
        assert err.value.status_code == pywbem.CIM_ERR_NOT_FOUND



def test_every_default_is_accepted_once_the_client_sets_what_it_must(
        server: Server, conn: pywbem.WBEMConnection) -> None:
    root = server.served.root
    gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": f"defaults-{root.name}"})
    vm = completed(conn, *invoke(conn, names.VSMS, "DefineVirtualSystem",
                                 SystemSettingData=gsd.tocimxmlstr()))["DefinedSystem"]
    # a SCSI controller, a disk drive on it and a VHD in the drive: each Default as served,
    # only Parent and Connection set
    scsi = add(conn, vm, default_of(conn, 6, "Microsoft Synthetic SCSI Controller"))
    drive = default_of(conn, 22, "Microsoft Synthetic Disk Drive")
    drive["Parent"] = scsi.to_wbem_uri()
    disk = root / "defaults.vhd"
    create_vhd(conn, disk)
    image = default_of(conn, 21, "Microsoft Virtual Hard Disk")
    image["Parent"] = add(conn, vm, drive).to_wbem_uri()
    image["Connection"] = [str(disk)]
    add(conn, vm, image)
    # a DVD drive per IDE slot, each with an ISO from one of the three ISO pools
    ide = sorted((r for r in settings_of(conn, vm) if r["ResourceType"] == 5),
                 key=lambda r: str(r["Address"]))
    isos = ("Microsoft Virtual CD/DVD Disk", "Microsoft ISO Image", "Microsoft Virtual DVD Disk")
    for n, (ctrl, slot, subtype) in enumerate(zip((ide[0], ide[0], ide[1]), "010", isos,
                                                  strict=True)):
        dvd = default_of(conn, 16, "Microsoft Synthetic DVD Drive")
        dvd["Parent"] = ctrl.path.to_wbem_uri()
        dvd["Address"] = slot
        iso = root / f"defaults-{n}.iso"
        make_iso(iso)
        media = default_of(conn, 21, subtype)
        media["Parent"] = add(conn, vm, dvd).to_wbem_uri()
        media["Connection"] = [str(iso)]
        add(conn, vm, media)
    add(conn, vm, default_of(conn, 10, "Microsoft Emulated Ethernet Port"))
    add(conn, vm, default_of(conn, 10, "Microsoft Synthetic Ethernet Port"))
    with VirtHost(QEMU_URI) as host:
        vs = host.get_system(str(vm.keybindings["Name"]))
    assert vs is not None
    assert sorted(m.path for m in vs.media) == sorted(
        [str(disk)] + [str(root / f"defaults-{n}.iso") for n in range(3)])
    assert sorted(n.synthetic for n in vs.nics) == [False, True]
    assert all(not n.static_mac for n in vs.nics)  # the service chose the MACs
    # every VM has its two IDE controllers: a third is refused, naming the reason
    rv, out = invoke(conn, names.VSMS, "AddVirtualSystemResources", TargetSystem=vm,
                     ResourceSettingData=[default_of(conn, 5, "Microsoft Emulated IDE Controller")
                                          .tocimxmlstr()])
    assert rv == ReturnCode.INVALID_PARAMETER and "at most 2 IDE" in out["ErrorDescription"]


# What the per-user scope filter (auth/scopes.py) takes for a VM: "Microsoft:<GUID>…"
_VM_ID = re.compile(r"Microsoft:\{?[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}",
                    re.IGNORECASE)


def test_host_level_instances_name_no_virtual_machine(conn: pywbem.WBEMConnection) -> None:
    found = [*all_pools(conn), *conn.EnumerateInstances(CAPS),
             *conn.ExecQuery("WQL", "SELECT * FROM CIM_ResourceAllocationSettingData WHERE "
                                    "InstanceID LIKE 'Microsoft:Definition%'")]
    assert len(found) == len(all_pools(conn)) * 6
    for inst in found:
        for name, prop in inst.properties.items():
            values = prop.value if isinstance(prop.value, list) else [prop.value]
            assert not any(isinstance(v, str) and _VM_ID.search(v) for v in values), \
                (inst.path, name, prop.value)


def test_reserved_counts_what_the_vms_hold(server: Server, conn: pywbem.WBEMConnection
                                          ) -> None:
    """Memory: the MB of the VMs that are not off or saved; a device pool: its devices in
    every VM of this instance (read from libvirt alongside, as the instance sees it)."""
    instance = instance_id(server.served.state_dir)
    for _ in range(5):
        with VirtHost(QEMU_URI, instance=instance) as host:
            before = host.inventory()
        pools = {p["ResourceSubType"]: p for p in all_pools(conn)}
        with VirtHost(QEMU_URI, instance=instance) as host:
            after = host.inventory()
        if before != after:
            continue
        running = sum(vs.memory_mb for vs, state in after if state not in (3, 32769))
        drives = sum(1 for vs, _ in after for d in vs.drives if d.kind.value == "disk")
        nics = sum(1 for vs, _ in after for n in vs.nics if n.synthetic)
        assert pools["Microsoft Virtual Machine Memory"]["Reserved"] == running
        assert pools["Microsoft Synthetic Disk Drive"]["Reserved"] == drives
        assert pools["Microsoft Synthetic Ethernet Port"]["Reserved"] == nics
        assert pools["Microsoft Processor"]["Reserved"] == 0
        return
    pytest.fail("the host's VMs kept changing")


def test_create_goal_settings(conn: pywbem.WBEMConnection) -> None:
    with VirtHost(QEMU_URI) as host:
        limits = host.limits()
    pool = pool_of(conn, 4, "Microsoft Virtual Machine Memory")
    caps = conn.Associators(pool.path, AssocClass=ELEMENT_CAPS, ResultClass=CAPS)[0]

    def goal(*template: pywbem.CIMInstance) -> tuple[int, dict[str, object]]:
        rv, out = conn.InvokeMethod("CreateGoalSettings", caps.path, TemplateGoalSettings=[
            t.tocimxmlstr() for t in template] or None)
        return int(rv), dict(out)

    rv, out = goal()  # no template: the Default
    assert rv == 0
    default = defining(conn, pool)[(0, 0)]
    supported = out["SupportedGoalSettings"]
    assert isinstance(supported, list) and len(supported) == 1
    got = parse(supported[0])
    assert got["InstanceID"] == default["InstanceID"] and got["VirtualQuantity"] == 512
    wish = default.copy()
    wish["VirtualQuantity"] = pywbem.Uint64(1024)
    rv, out = goal(wish)
    assert rv == 0 and parse(first(out))["VirtualQuantity"] == 1024
    wish["VirtualQuantity"] = pywbem.Uint64(limits.max_memory_mb + 1)
    rv, out = goal(wish)  # brought into range: Alternative Proposed
    assert rv == 6
    assert parse(first(out))["VirtualQuantity"] == limits.max_memory_mb
    other = default_of(conn, 22, "Microsoft Synthetic Disk Drive")
    rv, out = goal(other)
    assert rv == 5 and "Microsoft Virtual Machine Memory" in str(out["ErrorDescription"])


def first(out: dict[str, object]) -> object:
    found = out["SupportedGoalSettings"]
    assert isinstance(found, list) and len(found) == 1
    return found[0]


def parse(value: object) -> pywbem.CIMInstance:
    """An embedded instance as pywbem returns it (decoded, as the server marks it)."""
    if isinstance(value, pywbem.CIMInstance):
        return value
    assert isinstance(value, str)
    return parse_instance(value)


def test_goal_return_values_are_the_mofs() -> None:
    cls = next(c for c in load_classes() if c.classname == CAPS)
    value_map = cls.methods["CreateGoalSettings"].qualifiers["ValueMap"].value
    assert {str(int(m)) for m in GoalReturn} <= set(value_map)
