"""Msvm_ElementAllocatedFromPool: each logical device of a VM that has a RASD ↔ the primordial
pool that RASD draws from, both ways, over CIM-XML (qemu:///system)."""

from __future__ import annotations

import pytest
import pywbem

from tests.summary.conftest import Rig
from vsms.cim import names

pytestmark = pytest.mark.qemu
EAFP = "Msvm_ElementAllocatedFromPool"


def test_each_device_with_settings_is_allocated_from_their_pool(rig: Rig) -> None:
    conn = rig.conn
    vm = pywbem.CIMInstanceName(names.COMPUTER_SYSTEM, keybindings={
        "CreationClassName": names.COMPUTER_SYSTEM, "Name": rig.off.guid.upper()},
        namespace=names.NAMESPACE)
    devices = conn.Associators(vm, AssocClass="Msvm_SystemDevice", ResultRole="PartComponent")
    allocated = 0
    for dev in devices:
        settings = conn.Associators(dev.path, AssocClass="Msvm_ElementSettingData",
                                    ResultRole="SettingData")
        pools = conn.Associators(dev.path, AssocClass=EAFP, Role="Dependent",
                                 ResultRole="Antecedent")
        if not settings or settings[0]["ResourceType"] == 1:
            # no settings, or an integration component's (ResourceType 1 "Other"): no pool
            assert pools == [], dev.path
            continue
        assert len(pools) == 1, dev.path
        pool, rasd = pools[0], settings[0]
        assert (pool["PoolID"], pool["ResourceSubType"]) == \
            (rasd["PoolID"], rasd["ResourceSubType"]), dev.path
        back = conn.AssociatorNames(pool.path, AssocClass=EAFP, Role="Antecedent",
                                    ResultRole="Dependent")
        assert any(b.keybindings["DeviceID"] == dev["DeviceID"] and
                   b.keybindings["SystemName"] == rig.off.guid.upper() for b in back)
        refs = conn.References(dev.path, ResultClass=EAFP)
        assert [r["Antecedent"].keybindings["InstanceID"] for r in refs] == \
            [pool.path.keybindings["InstanceID"]]
        allocated += 1
    # processor, memory, the two IDE controllers at least
    assert allocated >= 4
    kinds = {p.classname for p in conn.EnumerateInstances(EAFP)
             for p in [p["Dependent"]] if p.keybindings["SystemName"] == rig.off.guid.upper()}
    assert {"Msvm_Processor", "Msvm_Memory", "Msvm_IDEController"} <= kinds
