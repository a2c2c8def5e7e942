"""Add/Modify/RemoveVirtualSystemResources: plan the device change, then ``ReplaceSystem``.

Devices change only while the VM is off. Every image path a client sends is confined to the
storage roots, must exist, and is probed from its own bytes: hard disk drives take VHD, VHDX or
qcow2 images, DVD drives ISO images; a hard disk image another VM uses is refused.
"""

from __future__ import annotations

import copy
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field

import pywbem

from vsms.disks.qemuimg import probe_format
from vsms.errors import InUse, InvalidParameter
from vsms.mapping import ids
from vsms.mapping.devices import Kind, classify
from vsms.mapping.resources import (
    ImageChecker,
    ResourceEnv,
    add_resource,
    modify_resource,
    remove_resource,
)
from vsms.model.vm import DriveKind, ImageFormat
from vsms.operations import switching
from vsms.operations.modify import ReplaceSystem, check_defineable, load_system, require_off
from vsms.operations.paths import StorageRoots
from vsms.operations.serial import socket_checker
from vsms.operations.switchports import port_resolver
from vsms.virt.host import VirtHost

DISK_FORMATS = (ImageFormat.VHD, ImageFormat.VHDX, ImageFormat.QCOW2)
_ISO_MARKERS = (b"CD001", b"BEA01", b"NSR02", b"NSR03")
_ISO_SECTORS = range(16, 20)


def _is_iso(path: str) -> bool:
    """ISO 9660 / UDF: a volume descriptor identifier in sectors 16..19 (offset 1 of 2048)."""
    try:
        with open(path, "rb") as fh:
            for sector in _ISO_SECTORS:
                fh.seek(sector * 2048 + 1)
                if fh.read(5) in _ISO_MARKERS:
                    return True
    except OSError:
        return False
    return False


def image_checker(roots: StorageRoots, host: VirtHost, guid: str) -> ImageChecker:
    """The ImageChecker for VM ``guid``: confine, require a regular file, probe its format."""
    in_use: dict[str, str] | None = None

    def check(raw: str, kind: DriveKind) -> tuple[str, ImageFormat]:
        nonlocal in_use
        what = "hard disk image" if kind is DriveKind.DISK else "DVD image"
        path = roots.confine(raw, what)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise InvalidParameter(f"{what} {raw} does not exist: create it first (for example "
                                   "with CreateDynamicVirtualHardDisk) or correct the path"
                                   ) from None
        except OSError as exc:
            raise InvalidParameter(f"{what} {raw} cannot be read: {exc.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise InvalidParameter(f"{what} {raw} is not a regular file: pass an image file")
        fmt = probe_format(str(path))
        if kind is DriveKind.DISK:
            if fmt not in DISK_FORMATS:
                raise InvalidParameter(
                    f"{what} {raw} is not a VHD, VHDX or qcow2 image (its content is "
                    f"{fmt.value} data): attach a virtual hard disk")
            if in_use is None:
                in_use = host.paths_in_use()
            owner = in_use.get(str(path))
            if owner is not None and owner.upper() != guid.upper():
                raise InUse(f"{what} {raw} is already attached to virtual machine {owner}: "
                            "detach it there first or use a copy")
        elif fmt is not ImageFormat.RAW or not _is_iso(str(path)):
            raise InvalidParameter(f"{what} {raw} is not an ISO image (its content is "
                                   f"{fmt.value} data): insert an ISO 9660 or UDF image")
        return str(path), fmt

    return check


def resource_env(roots: StorageRoots, host: VirtHost, guid: str) -> ResourceEnv:
    return ResourceEnv(check_image=image_checker(roots, host, guid), macs_in_use=host.macs_in_use(),
                       check_socket=socket_checker(roots),
                       resolve_port=port_resolver(host, guid))


@dataclass
class ResourceChange:
    """A planned device change: the operation to run and the device ids it touched."""

    op: ReplaceSystem
    dev_ids: list[str] = field(default_factory=list)


def prepare_add(host: VirtHost, roots: StorageRoots, guid: str,
                rasds: Sequence[pywbem.CIMInstance]) -> ResourceChange:
    """Plan AddVirtualSystemResources; ``dev_ids`` are the new devices, in the RASDs' order."""
    old = load_system(host, guid)
    if not rasds:
        raise InvalidParameter("ResourceSettingData is empty: pass at least one embedded "
                               "resource allocation setting data instance")
    require_off(host, old, "add devices")
    new = copy.deepcopy(old)
    env = resource_env(roots, host, guid)
    added = [add_resource(new, rasd, env) for rasd in rasds]
    return ResourceChange(ReplaceSystem(host, old, new, check_defineable(host, new)), added)


def prepare_modify_resources(host: VirtHost, roots: StorageRoots, guid: str,
                             rasds: Sequence[pywbem.CIMInstance]) -> ResourceChange:
    """Plan ModifyVirtualSystemResources (each RASD names its device by InstanceID)."""
    old = load_system(host, guid)
    if not rasds:
        raise InvalidParameter("ResourceSettingData is empty: pass the changed resource "
                               "allocation setting data instances")
    if host.state(guid) in switching.LIVE and all(  # only adapters' connections may change
            classify(r) in (Kind.SYNTHETIC_NIC, Kind.EMULATED_NIC) for r in rasds):
        new = copy.deepcopy(old)
        env = resource_env(roots, host, guid)
        changed = [modify_resource(new, rasd, env) for rasd in rasds]
        return ResourceChange(switching.prepare_live(host, old, new), changed)
    require_off(host, old, "change devices")
    new = copy.deepcopy(old)
    env = resource_env(roots, host, guid)
    changed = [modify_resource(new, rasd, env) for rasd in rasds]
    return ResourceChange(ReplaceSystem(host, old, new, check_defineable(host, new)), changed)


def prepare_remove(host: VirtHost, guid: str, refs: Sequence[object]) -> ResourceChange:
    """Plan RemoveVirtualSystemResources (RASD paths); a drive goes with its image and a SCSI
    controller with its drives."""
    old = load_system(host, guid)
    if not refs:
        raise InvalidParameter("ResourceSettingData is empty: pass the paths of the resource "
                               "allocation setting data to remove")
    require_off(host, old, "remove devices")
    new = copy.deepcopy(old)
    removed: list[str] = []
    for ref in refs:
        _, dev = ids.parse_device_id(ids.instance_id_from_ref(ref))
        if dev not in removed:  # already gone with its parent, earlier in this call
            removed.extend(remove_resource(new, ref))
    return ResourceChange(ReplaceSystem(host, old, new, check_defineable(host, new)), removed)
