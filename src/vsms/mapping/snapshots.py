"""A VM's snapshots as CIM instances: their settings and the associations of the tree.

A snapshot's settings are built by the mappers of the current settings (``mapping.system``,
``mapping.devices``) from the configuration recorded when it was taken, named after the
snapshot's own GUID: its Msvm_VirtualSystemSettingData is ``Microsoft:<snapshot GUID>`` with
SettingType 5, its ElementName, CreationTime and Parent (the WBEM URI of the parent snapshot's
settings; null for a root), and SystemName the VM's GUID; each RASD is
``Microsoft:<snapshot GUID>\\<device id>`` (disks name the snapshot's frozen images). A snapshot
has no global settings of its own (applying one leaves them).
"""

from __future__ import annotations

import dataclasses

import pywbem

from vsms.cim import names
from vsms.cim.enums import SettingType
from vsms.mapping import ids
from vsms.mapping.system import settings_instances
from vsms.model.vm import Snapshot, VirtualSystem

PREVIOUS_SD = "Msvm_PreviousSettingData"
PARENT_CHILD_SD = "Msvm_ParentChildSettingData"
LAST_APPLIED_SD = "Msvm_LastAppliedSettingData"
ASSOCIATIONS = (PREVIOUS_SD, PARENT_CHILD_SD, LAST_APPLIED_SD)


def vssd_path(snapshot_id: str) -> pywbem.CIMInstanceName:
    """The path of a snapshot's Msvm_VirtualSystemSettingData."""
    return ids.setting_path(names.VSSD, ids.vssd_id(snapshot_id))


def snapshot_instances(vs: VirtualSystem, snap: Snapshot) -> list[pywbem.CIMInstance]:
    """The snapshot's VSSD followed by one RASD per device of the configuration it records."""
    config = dataclasses.replace(snap.config, guid=snap.id, name=snap.name,
                                 created=snap.created)
    current = settings_instances(config)
    vssd = current[0]
    props = vssd.properties
    props["SettingType"].value = pywbem.Uint16(SettingType.SNAPSHOT)
    props["SystemName"].value = vs.guid
    props["Description"].value = "Settings of a snapshot of the virtual machine"
    props["Parent"].value = (ids.ref_text(names.VSSD, ids.vssd_id(snap.parent)) if snap.parent
                             else None)
    return [vssd, *current[2:]]  # no global settings: [1] is the configuration's VSGSD


def all_snapshot_instances(vs: VirtualSystem) -> list[pywbem.CIMInstance]:
    return [i for snap in vs.snapshots for i in snapshot_instances(vs, snap)]


def snapshot_of(vs: VirtualSystem, snapshot_id: str) -> Snapshot | None:
    sid = snapshot_id.upper()
    return next((s for s in vs.snapshots if s.id.upper() == sid), None)
