"""Device instances from a VM model alone (no libvirt): every class builds with every property
of its MOF class, keys carry the VM GUID, associations name only devices that exist."""

from __future__ import annotations

import pywbem

from tests.cim.conftest import classes
from tests.lifecycle.conftest import full_vm
from vsms.cim.enums import EnabledState
from vsms.mapping import checks
from vsms.mapping import components as mc
from vsms.mapping import logical_devices as ld

__all__ = ["classes"]


def test_every_device_of_a_full_vm_builds(classes: dict[str, pywbem.CIMClass]) -> None:
    vs = full_vm()
    found = ld.devices(vs)
    assert {d.classname for d in found} == set(ld.DEVICE_CLASSES)
    paths = set()
    for state in (EnabledState.ENABLED, EnabledState.PAUSED, EnabledState.DISABLED):
        for dev in found:
            inst = ld.instance(classes[dev.classname.lower()], vs, state, dev)
            assert set(inst.properties) == set(classes[dev.classname.lower()].properties)
            assert inst["SystemName"] == vs.guid
            paths.add((dev.classname, dev.device_id))
    assert len(paths) == len(found)  # no two devices share class and DeviceID
    bios = ld.bios_instance(classes[ld.BIOS.lower()], vs)
    assert bios["BIOSSerialNumber"] == vs.bios_serial and ld.system_of(bios.path) == vs.guid
    known = {(d.classname, d.device_id) for d in found} | {  # and the integration components
        (c.classname, mc.device_id(vs.guid, c)) for c in mc.COMPONENTS}
    for link in ld.links(vs, found):
        for ref in link.refs.values():
            if "DeviceID" in ref.keybindings:
                assert (ref.classname, ref["DeviceID"]) in known
            assert ld.system_of(ref) == vs.guid
    rasd_links = ld.setting_links(vs)
    assert len(rasd_links) == len([d for d in found if d.rasd]) + len(mc.COMPONENTS)


def test_serials_and_com_ports_must_fit_in_xml() -> None:
    vs = full_vm()
    assert checks.problems(vs, checks.MACHINE_LIMITS) == []
    vs.com_ports = ["/srv/a\x01.sock", ""]
    vs.chassis_serial = "bad\x02"
    found = checks.problems(vs, checks.MACHINE_LIMITS)
    assert any("COM 1" in p for p in found) and any("ChassisSerialNumber" in p for p in found)
