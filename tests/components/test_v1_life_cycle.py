"""A Hyper-V v1 client's whole life cycle of a VM, written from the reference pages, over CIM-XML
(pywbem) against a real ``vsms serve`` on qemu:///system:

default RASDs from the pools' allocation capabilities → DefineVirtualSystem → memory and
processors by ModifyVirtualSystemResources on the VM's Msvm_MemorySettingData /
Msvm_ProcessorSettingData → an IDE disk drive + VHD and a synthetic NIC from their templates →
start → GetSummaryInformation (state, processors, memory, uptime, heartbeat, a thumbnail that
shows the firmware's screen) → walk the logical devices → AddKvpItems and read them back →
InitiateShutdown → turn off → destroy.
"""

from __future__ import annotations

import time
from pathlib import Path

import pywbem

from tests.components.conftest import Server
from tests.components.test_components import host_items, item
from tests.e2e import wbemflow
from tests.pools.test_pools import add, default_of
from vsms.cim import names
from vsms.cim.enums import EnabledState, JobState, ReturnCode

VSMS = names.VSMS


def _one(found: list[pywbem.CIMInstance]) -> pywbem.CIMInstance:
    assert len(found) == 1, found
    return found[0]


def _not_one_colour(image: list[int]) -> bool:
    """More than one RGB 5:6:5 pixel value (the image is a uint8 array, two bytes a pixel)."""
    return len({(image[i], image[i + 1]) for i in range(0, len(image) - 1, 2)}) > 1


def test_a_v1_script_runs_unchanged(server: Server, conn: pywbem.WBEMConnection) -> None:
    root = server.root
    name = f"v1-life-{root.name}"
    # 1. DefineVirtualSystem with a global settings instance naming the VM
    gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": name})
    rv, out = wbemflow.invoke(conn, VSMS, "DefineVirtualSystem",
                              SystemSettingData=gsd.tocimxmlstr())
    out = wbemflow.completed(conn, rv, out)
    vm: pywbem.CIMInstanceName = out["DefinedSystem"]
    try:
        # 2. memory and processors: the VM's own settings, changed and sent back
        memory = _one(wbemflow.settings_of(conn, vm, names.MEMORY_SD))
        memory["VirtualQuantity"] = memory["Reservation"] = memory["Limit"] = \
            pywbem.Uint64(96)
        processors = _one(wbemflow.settings_of(conn, vm, names.PROCESSOR_SD))
        processors["VirtualQuantity"] = pywbem.Uint64(2)
        for setting in (memory, processors):
            wbemflow.completed(conn, *wbemflow.invoke(
                conn, VSMS, "ModifyVirtualSystemResources", ComputerSystem=vm,
                ResourceSettingData=[setting.tocimxmlstr()]))
        # 3. a disk drive on IDE 0, a VHD in it, a synthetic NIC: each from its pool's Default
        vhd = root / f"{name}.vhd"
        wbemflow.create_vhd(conn, vhd)
        ide0 = _one([r for r in wbemflow.settings_of(conn, vm)
                     if r["ResourceType"] == 5 and str(r["Address"]) == "0"])
        drive = default_of(conn, 22, "Microsoft Synthetic Disk Drive")
        drive["Parent"] = ide0.path.to_wbem_uri()
        drive["Address"] = "0"
        drive_path = add(conn, vm, drive)
        disk = default_of(conn, 21, "Microsoft Virtual Hard Disk")
        disk["Parent"] = drive_path.to_wbem_uri()
        disk["Connection"] = [str(vhd)]
        add(conn, vm, disk)
        nic = default_of(conn, 10, "Microsoft Synthetic Ethernet Port")
        nic["ElementName"] = "Network Adapter"
        add(conn, vm, nic)
        got = wbemflow.settings_of(conn, vm)
        assert [r["Connection"] for r in got if r["ResourceType"] == 21] == [[str(vhd)]]
        assert len([r for r in got if r.classname == names.SYNTHETIC_NIC_SD]) == 1

        # 4. start, then what a console shows of it
        wbemflow.completed(conn, *wbemflow.invoke(conn, vm, "RequestStateChange",
                                                  RequestedState=pywbem.Uint16(2)))
        current = _one(conn.Associators(vm, AssocClass=names.SETTINGS_DEFINE_STATE,
                                        ResultClass=names.VSSD))
        wanted = [pywbem.Uint32(i) for i in (0, 1, 4, 100, 101, 103, 104, 105, 106)]
        deadline = time.monotonic() + 60
        while True:  # the firmware needs a moment to draw its first screen
            rv, out = wbemflow.invoke(conn, VSMS, "GetSummaryInformation",
                                      SettingData=[current.path],
                                      RequestedInformation=[*wanted, pywbem.Uint32(5)])
            assert rv == ReturnCode.COMPLETED, out
            summary = _one(out["SummaryInformation"])
            if _not_one_colour(summary["ThumbnailImage"]) or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert summary["Name"] == vm["Name"] and summary["ElementName"] == name
        assert summary["EnabledState"] == EnabledState.ENABLED
        assert summary["NumberOfProcessors"] == 2
        assert summary["MemoryUsage"] == 96
        assert summary["UpTime"] > 0
        assert summary["Heartbeat"] == 12  # No Contact: this VM runs no guest agent
        assert len(summary["ThumbnailImage"]) == 80 * 60 * 2  # 80x60 RGB 5:6:5, the default
        assert _not_one_colour(summary["ThumbnailImage"]), "the firmware's screen never showed"

        # 5. the logical devices of the VM, each with its settings
        devices = conn.Associators(vm, AssocClass="Msvm_SystemDevice")
        kinds = {d.classname for d in devices}
        assert {"Msvm_Processor", "Msvm_Memory", "Msvm_IDEController", "Msvm_DiskDrive",
                "Msvm_LogicalDisk", "Msvm_SyntheticEthernetPort", "Msvm_ShutdownComponent",
                "Msvm_KvpExchangeComponent"} <= kinds, kinds
        assert len([d for d in devices if d.classname == "Msvm_Processor"]) == 2
        # the IDE controller follows the VM: enabled and at full power while it runs
        ide = _one([d for d in devices if d.classname == "Msvm_IDEController"
                    and str(d["DeviceID"]).endswith("\\0")] or
                   [d for d in devices if d.classname == "Msvm_IDEController"][:1])
        assert (ide["EnabledState"], ide["Availability"]) == (EnabledState.ENABLED, 3)

        # 6. key-value items: added, then read back from the VM's KVP settings
        wbemflow.completed(conn, *wbemflow.invoke(
            conn, VSMS, "AddKvpItems", TargetSystem=vm,
            DataItems=[item("Owner", "ops"), item("Tier", "web")]))
        assert host_items(conn, vm) == {"Owner": "ops", "Tier": "web"}

        # 7. ask the guest to shut down: nothing runs in it, so the job says so after the
        # (short, in this test) timeout and leaves the VM running; then turn it off
        shutdown = _one([d for d in devices if d.classname == "Msvm_ShutdownComponent"])
        rv, out = wbemflow.invoke(conn, shutdown.path, "InitiateShutdown", Force=True,
                                  Reason="v1 life cycle")
        assert rv == ReturnCode.JOB_STARTED, out
        job = wbemflow.wait_job(conn, out["Job"])
        assert job["JobState"] == JobState.EXCEPTION and "did not react" in \
            job["ErrorDescription"]
        assert wbemflow.enabled_state(conn, vm) == EnabledState.ENABLED
        wbemflow.completed(conn, *wbemflow.invoke(conn, vm, "RequestStateChange",
                                                  RequestedState=pywbem.Uint16(3)))
        assert wbemflow.enabled_state(conn, vm) == EnabledState.DISABLED
    finally:
        if wbemflow.enabled_state(conn, vm) != EnabledState.DISABLED:  # a failure above
            wbemflow.completed(conn, *wbemflow.invoke(conn, vm, "RequestStateChange",
                                                      RequestedState=pywbem.Uint16(3)))
        # 8. destroy: the VM goes, its VHD stays (Hyper-V never deletes a VM's disks)
        rv, out = wbemflow.invoke(conn, VSMS, "DestroyVirtualSystem", ComputerSystem=vm)
        wbemflow.completed(conn, rv, out)
    assert not [v for v in conn.EnumerateInstanceNames(names.COMPUTER_SYSTEM)
                if v["Name"] == vm["Name"]]
    assert Path(vhd).exists()
