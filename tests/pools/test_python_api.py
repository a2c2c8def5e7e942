"""The same pools through the Python API (``vsms.app.Service``'s registry, no WBEM front end)
on qemu:///system: a default found through the associations, changed and added to a VM."""

from __future__ import annotations

from pathlib import Path

import pywbem

from tests.conftest import QEMU_URI
from tests.lifecycle.service import make_vhd, running_service, text
from vsms.cim import names


def test_python_api_default_disk_and_image(storage_root: Path) -> None:
    with running_service(storage_root, storage_root / "state", QEMU_URI) as svc:
        ns = svc.ns

        def default(subtype: str) -> pywbem.CIMInstance:
            pool = [p for p in svc.registry.enumerate_instances(ns, "Msvm_ResourcePool")
                    if p["ResourceSubType"] == subtype]
            assert len(pool) == 1
            caps = svc.associators(pool[0].path, assoc_class="Msvm_ElementCapabilities",
                                   result_class="Msvm_AllocationCapabilities")
            links = [r for r in svc.registry.references(
                ns, caps[0].path, result_class="Msvm_SettingsDefineCapabilities")
                if r["ValueRole"] == 0]
            assert len(links) == 1
            return svc.get(links[0]["PartComponent"])

        gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": "pools-python-api"})
        rv, out = svc.vsms("DefineVirtualSystem", SystemSettingData=text(gsd))
        assert rv == 0, out
        vm = out["DefinedSystem"]
        vssd = svc.associators(vm, assoc_class=names.SETTINGS_DEFINE_STATE)[0]
        ide0 = next(r for r in svc.associators(vssd.path, assoc_class=names.VSSD_COMPONENT)
                    if r.get("ResourceType") == 5 and r.get("Address") == "0")
        drive = default("Microsoft Synthetic Disk Drive")
        drive["Parent"] = ide0.path.to_wbem_uri()
        image = default("Microsoft Virtual Hard Disk")
        image["Parent"] = drive["InstanceID"]  # an earlier RASD of the same call, by its ID
        disk = storage_root / "api.vhd"
        make_vhd(disk)
        image["Connection"] = [str(disk)]
        rv, out = svc.vsms("AddVirtualSystemResources", TargetSystem=vm,
                           ResourceSettingData=[text(drive), text(image)])
        assert rv == 0, out
        assert len(out["NewResources"]) == 2
        vs = svc.host.get_system(str(vm["Name"]))
        assert vs is not None and [m.path for m in vs.media] == [str(disk)]
        # the new image's RASD is allocated from the virtual hard disk pool
        pool = svc.associators(out["NewResources"][1],
                               assoc_class="Msvm_ResourceAllocationFromPool")
        assert [p["ResourceSubType"] for p in pool] == ["Microsoft Virtual Hard Disk"]
