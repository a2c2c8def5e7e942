"""New identities for an imported VM (GenerateNewID): GUID (and so BIOSGUID), every device id,
every MAC, the SMBIOS serial numbers."""

from __future__ import annotations

import copy
import secrets

from vsms.model.vm import VirtualSystem, new_guid, new_serial

HYPERV_OUI = "00:15:5D"


def new_mac() -> str:
    """A random MAC in Hyper-V's 00:15:5D range."""
    return HYPERV_OUI + "".join(f":{b:02X}" for b in secrets.token_bytes(3))


def with_new_identity(vs: VirtualSystem) -> VirtualSystem:
    """A deep copy of ``vs`` with a new GUID, new device ids (references kept), new MACs and
    new SMBIOS serial numbers."""
    out = copy.deepcopy(vs)
    out.guid = new_guid()
    out.bios_serial, out.baseboard_serial, out.chassis_serial = (
        new_serial(), new_serial(), new_serial())
    ids: dict[str, str] = {}

    def remap(old: str) -> str:
        return ids.setdefault(old, new_guid())

    for c in out.controllers:
        c.dev_id = remap(c.dev_id)
    for d in out.drives:
        d.dev_id = remap(d.dev_id)
        d.controller_id = remap(d.controller_id)
    for m in out.media:
        m.dev_id = remap(m.dev_id)
        m.drive_id = remap(m.drive_id)
    for n in out.nics:
        n.dev_id = remap(n.dev_id)
        n.mac = new_mac()
    return out
