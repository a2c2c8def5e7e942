"""Client-side helpers that drive vsms the way Hyper-V scripts drive root/virtualization.

They build embedded instances, find default devices through associations and add resources with
AddVirtualSystemResources, exactly as nova's v1 vmutils or the MS samples do.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pywbem

from vsms.cim import names
from vsms.cim.embedded import serialize_instance
from vsms.cim.enums import JobState, ReturnCode
from vsms.client import LocalClient


def text(inst: pywbem.CIMInstance) -> str:
    return serialize_instance(inst)


def finished_ok(client: LocalClient, rv: int, out: dict[str, Any]) -> dict[str, Any]:
    """Assert a method succeeded (0, or 4096 with a job ending Completed); return out params."""
    if rv == ReturnCode.JOB_STARTED:
        job = client.wait(out["Job"])
        assert job["JobState"] == JobState.COMPLETED, (job["ErrorCode"], job["ErrorDescription"])
    else:
        assert rv == ReturnCode.COMPLETED, rv
    return out


def define_vm(client: LocalClient, name: str, *, memory_mb: int = 128,
              processors: int = 1) -> pywbem.CIMInstanceName:
    gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": name})
    rv, out = client.vsms("DefineVirtualSystem", SystemSettingData=text(gsd),
                          ResourceSettingData=[])
    out = finished_ok(client, rv, out)
    vm: pywbem.CIMInstanceName = out["DefinedSystem"]
    set_memory(client, vm, memory_mb)
    set_processors(client, vm, processors)
    return vm


def rasds(client: LocalClient, vm: pywbem.CIMInstanceName,
          result_class: str = names.RASD) -> list[pywbem.CIMInstance]:
    vssd = client.registry.associators(client.namespace, vm,
                                       assoc_class=names.SETTINGS_DEFINE_STATE,
                                       result_class=names.VSSD)
    assert len(vssd) == 1
    assert vssd[0].path is not None
    return client.registry.associators(client.namespace, vssd[0].path,
                                       assoc_class=names.VSSD_COMPONENT,
                                       result_class=result_class)


def _modify(client: LocalClient, vm: pywbem.CIMInstanceName, inst: pywbem.CIMInstance) -> None:
    rv, out = client.vsms("ModifyVirtualSystemResources", ComputerSystem=vm,
                          ResourceSettingData=[text(inst)])
    finished_ok(client, rv, out)


def set_memory(client: LocalClient, vm: pywbem.CIMInstanceName, mb: int) -> None:
    mem = rasds(client, vm, names.MEMORY_SD)[0]
    mem["VirtualQuantity"] = pywbem.Uint64(mb)
    mem["Reservation"] = pywbem.Uint64(mb)
    mem["Limit"] = pywbem.Uint64(mb)
    _modify(client, vm, mem)


def set_processors(client: LocalClient, vm: pywbem.CIMInstanceName, count: int) -> None:
    cpu = rasds(client, vm, names.PROCESSOR_SD)[0]
    cpu["VirtualQuantity"] = pywbem.Uint64(count)
    _modify(client, vm, cpu)


def add_resource(client: LocalClient, vm: pywbem.CIMInstanceName,
                 inst: pywbem.CIMInstance) -> pywbem.CIMInstanceName:
    rv, out = client.vsms("AddVirtualSystemResources", TargetSystem=vm,
                          ResourceSettingData=[text(inst)])
    out = finished_ok(client, rv, out)
    new: list[pywbem.CIMInstanceName] = out["NewResources"]
    assert len(new) == 1
    return new[0]


def ide_controller(client: LocalClient, vm: pywbem.CIMInstanceName,
                   index: int = 0) -> pywbem.CIMInstance:
    found = [r for r in rasds(client, vm)
             if r["ResourceType"] == 5 and str(r["Address"]) == str(index)]
    assert len(found) == 1, [(r["ResourceType"], r["Address"]) for r in rasds(client, vm)]
    return found[0]


def add_vhd(client: LocalClient, vm: pywbem.CIMInstanceName, path: str, *,
            controller: int = 0, slot: int = 0) -> pywbem.CIMInstanceName:
    """An IDE disk drive in (controller, slot) with the image at ``path`` inserted."""
    ctrl = ide_controller(client, vm, controller)
    drive = pywbem.CIMInstance(names.RASD, properties={
        "ResourceType": pywbem.Uint16(22),
        "ResourceSubType": "Microsoft Synthetic Disk Drive",
        "Parent": ctrl.path.to_wbem_uri() if ctrl.path is not None else "",
        "Address": str(slot),
    })
    drive_path = add_resource(client, vm, drive)
    image = pywbem.CIMInstance(names.RASD, properties={
        "ResourceType": pywbem.Uint16(21),
        "ResourceSubType": "Microsoft Virtual Hard Disk",
        "Parent": drive_path.to_wbem_uri(),
        "Connection": [path],
    })
    return add_resource(client, vm, image)


def add_nic(client: LocalClient, vm: pywbem.CIMInstanceName, switch: str = "") -> None:
    nic = pywbem.CIMInstance(names.SYNTHETIC_NIC_SD, properties={
        "ResourceType": pywbem.Uint16(10),
        "ResourceSubType": "Microsoft Synthetic Ethernet Port",
        "ElementName": "Network Adapter",
    })
    if switch:
        nic["Connection"] = [switch]
    add_resource(client, vm, nic)


def make_vhd(path: str, size: str = "64M", data_mb: int = 0, pattern: int = 0xA5) -> None:
    """A dynamic VHD made with qemu-img, with ``data_mb`` MiB of a byte pattern written at
    offset 1 MiB through qemu-io (so the image holds real data in its own format)."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", "-o",
                    "subformat=dynamic,force_size=on", path, size], check=True, timeout=60)
    if data_mb:
        subprocess.run(["qemu-io", "-f", "vpc", "-c", f"write -P {pattern} 1M {data_mb}M", path],
                       check=True, timeout=300, capture_output=True)


def vm_state(client: LocalClient, vm: pywbem.CIMInstanceName) -> int:
    return int(client.registry.get_instance(client.namespace, vm)["EnabledState"])


def request_state(client: LocalClient, vm: pywbem.CIMInstanceName, state: int) -> None:
    rv, out = client.invoke(vm, "RequestStateChange", RequestedState=pywbem.Uint16(state))
    finished_ok(client, rv, out)
