"""The Hyper-V client call sequences of ``tests/hyperv.py``, over CIM-XML through pywbem.

Each helper does what a Hyper-V v1 script does against ``root/virtualization``: embedded
instances as CIM-XML text, default devices found through the associations, jobs followed by
polling ``GetInstance`` of the ``Job`` reference until ``JobState`` leaves New/Starting/Running.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pywbem

from vsms.cim import names
from vsms.cim.enums import JobState, ReturnCode

JOB_TIMEOUT = 120.0
CIM_RASD = "CIM_ResourceAllocationSettingData"


def service_path(conn: pywbem.WBEMConnection,
                 classname: str = names.VSMS) -> pywbem.CIMInstanceName:
    found = conn.EnumerateInstanceNames(classname)
    assert len(found) == 1, found
    path: pywbem.CIMInstanceName = found[0]
    return path


def invoke(conn: pywbem.WBEMConnection, target: pywbem.CIMInstanceName | str, method: str,
           **params: Any) -> tuple[int, dict[str, Any]]:
    """InvokeMethod on ``target`` (a path, or the class name of a singleton service)."""
    path = service_path(conn, target) if isinstance(target, str) else target
    rv, out = conn.InvokeMethod(method, path, **params)
    return int(rv), dict(out)


def wait_job(conn: pywbem.WBEMConnection, job: pywbem.CIMInstanceName,
             timeout: float = JOB_TIMEOUT) -> pywbem.CIMInstance:
    """Poll the job like a Hyper-V client until it has finished (deadline ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        inst = conn.GetInstance(job)
        if JobState(int(inst["JobState"])).finished:
            return inst
        assert time.monotonic() < deadline, f"job {job} still {inst['JobState']} after {timeout}s"
        time.sleep(0.05)


def completed(conn: pywbem.WBEMConnection, rv: int, out: dict[str, Any]) -> dict[str, Any]:
    """Assert a method succeeded: 0, or 4096 with a job that ends in JobState 7."""
    if rv == ReturnCode.JOB_STARTED:
        job = wait_job(conn, out["Job"])
        assert job["JobState"] == JobState.COMPLETED, (job["ErrorCode"], job["ErrorDescription"])
        assert job["PercentComplete"] == 100
    else:
        assert rv == ReturnCode.COMPLETED, (rv, out)
    return out


def run_job(conn: pywbem.WBEMConnection, target: pywbem.CIMInstanceName | str, method: str,
            **params: Any) -> pywbem.CIMInstance:
    """Invoke a method that starts a job (4096) and return the job once it has finished."""
    rv, out = invoke(conn, target, method, **params)
    assert rv == ReturnCode.JOB_STARTED, (method, rv, out)
    return wait_job(conn, out["Job"])


def settings_of(conn: pywbem.WBEMConnection, vm: pywbem.CIMInstanceName,
                result_class: str = CIM_RASD) -> list[pywbem.CIMInstance]:
    """The resource settings of a VM: VM -> VSSD -> components, as Hyper-V scripts find them."""
    vssd = conn.Associators(vm, AssocClass=names.SETTINGS_DEFINE_STATE, ResultClass=names.VSSD)
    assert len(vssd) == 1, vssd
    found: list[pywbem.CIMInstance] = conn.Associators(
        vssd[0].path, AssocClass=names.VSSD_COMPONENT, ResultClass=result_class)
    return found


def modify(conn: pywbem.WBEMConnection, vm: pywbem.CIMInstanceName,
           setting: pywbem.CIMInstance) -> None:
    completed(conn, *invoke(conn, names.VSMS, "ModifyVirtualSystemResources",
                            ComputerSystem=vm, ResourceSettingData=[setting.tocimxmlstr()]))


def define_vm(conn: pywbem.WBEMConnection, name: str, *, memory_mb: int = 128,
              track: set[str] | None = None) -> pywbem.CIMInstanceName:
    """DefineVirtualSystem with an embedded Msvm_VirtualSystemGlobalSettingData (passed as a
    CIMInstance: pywbem writes it with EmbeddedObject="instance"; the other helpers pass the
    CIM-XML text), then the memory set through ModifyVirtualSystemResources; returns the new
    Msvm_ComputerSystem path; its GUID goes into ``track`` as soon as it exists."""
    gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": name})
    out = completed(conn, *invoke(conn, names.VSMS, "DefineVirtualSystem",
                                  SystemSettingData=gsd))
    vm: pywbem.CIMInstanceName = out["DefinedSystem"]
    assert vm.classname == names.COMPUTER_SYSTEM
    if track is not None:
        track.add(str(vm.keybindings["Name"]).upper())
    mem = settings_of(conn, vm, names.MEMORY_SD)[0]
    for prop in ("VirtualQuantity", "Reservation", "Limit"):
        mem[prop] = pywbem.Uint64(memory_mb)
    modify(conn, vm, mem)
    return vm


def create_vhd(conn: pywbem.WBEMConnection, path: Path, size: int = 64 * 2**20) -> None:
    """Msvm_ImageManagementService.CreateDynamicVirtualHardDisk, its job followed to 7."""
    job = run_job(conn, names.IMAGE_SERVICE, "CreateDynamicVirtualHardDisk", Path=str(path),
                  MaxInternalSize=pywbem.Uint64(size))
    assert job.classname == names.STORAGE_JOB
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]


def add_resource(conn: pywbem.WBEMConnection, vm: pywbem.CIMInstanceName,
                 rasd: pywbem.CIMInstance) -> pywbem.CIMInstanceName:
    out = completed(conn, *invoke(conn, names.VSMS, "AddVirtualSystemResources",
                                  TargetSystem=vm, ResourceSettingData=[rasd.tocimxmlstr()]))
    new: list[pywbem.CIMInstanceName] = out["NewResources"]
    assert len(new) == 1, new
    return new[0]


def add_vhd(conn: pywbem.WBEMConnection, vm: pywbem.CIMInstanceName,
            disk: Path) -> pywbem.CIMInstanceName:
    """A synthetic disk drive in slot 0 of IDE controller 0, then the VHD inserted in it."""
    ide0 = [r for r in settings_of(conn, vm)
            if r["ResourceType"] == 5 and str(r["Address"]) == "0"]
    assert len(ide0) == 1
    drive = pywbem.CIMInstance(names.RASD, properties={
        "ResourceType": pywbem.Uint16(22),
        "ResourceSubType": "Microsoft Synthetic Disk Drive",
        "Parent": ide0[0].path.to_wbem_uri(),
        "Address": "0",
    })
    drive_path = add_resource(conn, vm, drive)
    image = pywbem.CIMInstance(names.RASD, properties={
        "ResourceType": pywbem.Uint16(21),
        "ResourceSubType": "Microsoft Virtual Hard Disk",
        "Parent": drive_path.to_wbem_uri(),
        "Connection": [str(disk)],
    })
    return add_resource(conn, vm, image)


def add_nic(conn: pywbem.WBEMConnection, vm: pywbem.CIMInstanceName) -> None:
    nic = pywbem.CIMInstance(names.SYNTHETIC_NIC_SD, properties={
        "ResourceType": pywbem.Uint16(10),
        "ResourceSubType": "Microsoft Synthetic Ethernet Port",
        "ElementName": "Network Adapter",
    })
    add_resource(conn, vm, nic)


def vm_with_disk(conn: pywbem.WBEMConnection, root: Path, name: str) -> pywbem.CIMInstanceName:
    """A VM with a VHD made by the image service and a NIC: what the export tests move."""
    disks = root / "vms"
    disks.mkdir(mode=0o755, exist_ok=True)
    disk = disks / f"{name}.vhd"
    create_vhd(conn, disk)
    vm = define_vm(conn, name)
    add_vhd(conn, vm, disk)
    add_nic(conn, vm)
    return vm


def export(conn: pywbem.WBEMConnection, vm: pywbem.CIMInstanceName, directory: Path) -> None:
    """ExportVirtualSystem with CopyVmState TRUE into ``directory`` (made here), job to 7."""
    directory.mkdir(mode=0o755)
    job = run_job(conn, names.VSMS, "ExportVirtualSystem", ComputerSystem=vm, CopyVmState=True,
                  ExportDirectory=str(directory))
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]


def affected_vms(conn: pywbem.WBEMConnection, job: pywbem.CIMInstance) -> list[pywbem.CIMInstance]:
    """The VMs a job affected, through Msvm_AffectedJobElement."""
    found: list[pywbem.CIMInstance] = conn.Associators(
        job.path, AssocClass=names.AFFECTED_JOB_ELEMENT, ResultClass=names.COMPUTER_SYSTEM)
    return found


def request_state(conn: pywbem.WBEMConnection, vm: pywbem.CIMInstanceName, state: int) -> None:
    job = run_job(conn, vm, "RequestStateChange", RequestedState=pywbem.Uint16(state))
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]


def enabled_state(conn: pywbem.WBEMConnection, vm: pywbem.CIMInstanceName) -> int:
    return int(conn.GetInstance(vm)["EnabledState"])
