"""The fast paths the server benchmark asked for answer exactly what the plain ones do.

* ``vsms.virt.cache.clone`` is a deep copy (equal, nothing shared that can change);
* the writer's per-response property tags (``frames``) write the same text as without them,
  and its datetime text is pywbem's;
* an Msvm_ComputerSystem enumeration reuses a VM's instance only while nothing it is made from
  changed, lists every VM with two libvirt calls, and shows a state change at once.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone

import pytest
import pywbem

from tests.e2e import wbemflow
from tests.e2e.conftest import Served
from tests.lifecycle.conftest import full_vm
from vsms.cim import names
from vsms.cim.enums import EnabledState, RequestedState
from vsms.mapping.system import computer_system, settings_instances
from vsms.model.vm import VirtualSystem
from vsms.virt.cache import clone
from vsms.wbem import encode


def test_clone_is_a_deep_copy() -> None:
    vs = full_vm()
    twin = clone(vs)
    assert type(twin) is VirtualSystem and twin == vs == copy.deepcopy(vs) and twin is not vs
    for name in ("controllers", "drives", "media", "nics", "boot_order"):
        mine, theirs = getattr(vs, name), getattr(twin, name)
        assert mine is not theirs and mine == theirs
        assert all(a is not b for a, b in zip(mine, theirs, strict=True) if not isinstance(a, int))
    twin.drives[0].address = 63
    twin.nics[0].mac = "00:15:5D:00:00:01"
    twin.boot_order.append(9)
    assert vs.drives[0].address != 63 and vs.nics[0].mac != "00:15:5D:00:00:01"
    assert 9 not in vs.boot_order
    odd = {"a": [1, {"b": 2}]}
    assert clone(odd) == odd and clone(odd)["a"] is not odd["a"]


def test_writer_frames_change_nothing() -> None:
    vs = full_vm()
    insts = [computer_system(vs, EnabledState.ENABLED, RequestedState.DISABLED, [2, 32773],
                             on_time_ms=7, last_state_change=datetime.now(UTC)),
             *settings_instances(vs)]
    insts[0].qualifiers["Dynamic"] = pywbem.CIMQualifier("Dynamic", True)
    insts[1].properties["ElementName"].qualifiers["Key"] = pywbem.CIMQualifier("Key", False)
    frames: encode.Frames = {}
    for origins in (True, False, {"elementname": "CIM_ManagedElement"}):
        for quals in (True, False):
            for keep in (None, {"elementname", "instanceid", "connection", "name"}):
                for inst in insts * 2:
                    plain = encode.write_instance(inst, keep, origins, quals)
                    assert encode.write_instance(inst, keep, origins, quals, frames) == plain
    assert frames


@pytest.mark.parametrize("minutes", [0, 60, -300, 330, -720, 840, None])
def test_datetime_text_is_pywbem_text(minutes: int | None) -> None:
    tz = None if minutes is None else timezone(timedelta(minutes=minutes))
    value = pywbem.CIMDateTime(datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=tz))
    assert encode.datetime_text(value) == str(value)
    interval = pywbem.CIMDateTime(timedelta(days=3, hours=4, seconds=5, microseconds=6))
    assert encode.datetime_text(interval) == str(interval)


@pytest.mark.qemu
def test_vm_list_reuses_instances_until_something_changes(served: Served,
                                                          conn: pywbem.WBEMConnection) -> None:
    vm = wbemflow.vm_with_disk(conn, served.root, f"memo-{served.token}")
    guid = str(vm.keybindings["Name"])
    registry = served.service.registry

    def listed() -> pywbem.CIMInstance:
        found = [i for i in registry.enumerate_instances(names.NAMESPACE, names.COMPUTER_SYSTEM)
                 if i["Name"] == guid]
        assert len(found) == 1
        return found[0]

    first = listed()
    assert listed() is first  # nothing changed: the same instance
    inventory = dict((vs.guid.upper(), state) for vs, state in served.service.host.inventory())
    assert inventory[guid.upper()] == EnabledState.DISABLED

    gsd = pywbem.CIMInstance(names.VSSD, properties={
        "InstanceID": f"Microsoft:{guid}", "ElementName": f"renamed-{served.token}"})
    wbemflow.completed(conn, *wbemflow.invoke(conn, names.VSMS, "ModifyVirtualSystem",
                                              ComputerSystem=vm,
                                              SystemSettingData=gsd.tocimxmlstr()))
    renamed = listed()
    assert renamed is not first and renamed["ElementName"] == f"renamed-{served.token}"

    wbemflow.request_state(conn, vm, EnabledState.ENABLED)
    try:
        running = listed()
        assert running["EnabledState"] == EnabledState.ENABLED
        assert conn.GetInstance(vm)["EnabledState"] == EnabledState.ENABLED
    finally:
        wbemflow.request_state(conn, vm, EnabledState.DISABLED)
    assert listed()["EnabledState"] == EnabledState.DISABLED
