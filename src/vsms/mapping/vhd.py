"""A disk image's facts as the Msvm_VirtualHardDiskInfo that GetVirtualHardDiskInfo embeds."""

from __future__ import annotations

import pywbem

from vsms.cim import names
from vsms.disks.api import ImageInfo


def vhd_info_instance(info: ImageInfo, in_use: bool, in_saved_state: bool) -> pywbem.CIMInstance:
    """Msvm_VirtualHardDiskInfo for ``info`` (no path: it travels as an embedded instance).

    Every property has a value: clients such as nova read each PROPERTY's VALUE element, so
    ParentPath is an empty string (not NULL) for a disk without a parent.
    """
    props = [
        pywbem.CIMProperty("Type", pywbem.Uint16(info.type), type="uint16"),
        pywbem.CIMProperty("FileSize", pywbem.Uint64(info.file_size), type="uint64"),
        pywbem.CIMProperty("MaxInternalSize", pywbem.Uint64(info.virtual_size), type="uint64"),
        pywbem.CIMProperty("InSavedState", bool(in_saved_state), type="boolean"),
        pywbem.CIMProperty("InUse", bool(in_use), type="boolean"),
        pywbem.CIMProperty("ParentPath", info.parent_path or "", type="string"),
    ]
    return pywbem.CIMInstance(names.VHD_INFO, properties=props)
