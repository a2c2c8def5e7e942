"""Where libvirt keeps a saved (Suspended) VM's memory state, so a snapshot can copy it.

libvirt's managed save image of a QEMU domain is ``<save dir>/<domain name>.save``: the save
dir is ``/var/lib/libvirt/qemu/save`` for ``qemu:///system`` and
``$XDG_CONFIG_HOME/libvirt/qemu/save`` for ``qemu:///session``; libvirt has no call that names
it. The file found there is only trusted once libvirt reads it as a save image of that very
domain (``saveImageGetXMLDesc``, UUID compared).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Any

import libvirt

from vsms.errors import NotSupported, OperationFailed

SYSTEM_SAVE_DIR = "/var/lib/libvirt/qemu/save"


def save_dir(uri: str) -> str:
    """libvirt's managed save folder for the connection ``uri``; NotSupported for others."""
    bare = uri.split("?", 1)[0].rstrip("/")
    if bare.startswith("qemu") and bare.endswith("/system"):
        return SYSTEM_SAVE_DIR
    if bare.startswith("qemu") and bare.endswith("/session"):
        config = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
        return os.path.join(config, "libvirt", "qemu", "save")
    raise NotSupported(f"the saved state of a virtual machine on {uri} cannot be copied "
                       "(only local qemu:///system and qemu:///session keep it in a known file)")


def managed_save_file(dom: Any, uri: str, label: str) -> str:
    """The file holding the saved memory state of the saved domain ``dom``; OperationFailed
    when it is missing or is not that domain's save image."""
    path = os.path.join(save_dir(uri), f"{dom.name()}.save")
    try:
        xml = dom.connect().saveImageGetXMLDesc(path, 0)
    except libvirt.libvirtError as exc:
        raise OperationFailed(f"the saved state of {label} is not where libvirt keeps it "
                              f"({path}): {exc.get_error_message()}") from exc
    uuid = ET.fromstring(xml).findtext("uuid") or ""
    if uuid.upper() != dom.UUIDString().upper():
        raise OperationFailed(f"{path} is not the saved state of {label} (it belongs to "
                              f"domain {uuid}); the snapshot is not taken")
    return path
