"""Msvm_ImageManagementService: the singleton "vhdsvc" and its virtual hard disk methods.

CreateDynamicVirtualHardDisk, CreateFixedVirtualHardDisk and CreateDifferencingVirtualHardDisk
check their parameters at once (32773 / 32769 / 32770 / 32779 with nothing done) and then run as
Msvm_StorageJob jobs (4096 + Job). GetVirtualHardDiskInfo answers at once (0 + Info, an embedded
Msvm_VirtualHardDiskInfo).

ExpandVirtualHardDisk, CompactVirtualHardDisk, ConvertVirtualHardDisk, MergeVirtualHardDisk,
ValidateVirtualHardDisk and CreateVirtualFloppyDisk check their parameters at once and run as
Msvm_StorageJob jobs (``operations.vhd_edit``, ``operations.vhd_chain``);
ReconnectParentVirtualHardDisk finishes within the call (0). Mount and Unmount answer 32770 with
the reason in ErrorDescription (no nbd kernel module, not root, or loopback mounting through
qemu-nbd not built). StartService/StopService answer 32770.
"""

from __future__ import annotations

import os
from typing import Any

from vsms.auth.policy import Role
from vsms.cim import names
from vsms.cim.embedded import serialize_instance
from vsms.cim.enums import ReturnCode, StorageJobType
from vsms.errors import NotSupported
from vsms.jobs.manager import Reservation
from vsms.mapping.vhd import vhd_info_instance
from vsms.operations import vhd, vhd_chain, vhd_edit
from vsms.providers.base import CIMTarget, SingletonService, method
from vsms.providers.common import Params, Result, as_bool, as_str, param

_A, _O = Role.ADMINISTRATOR, Role.OPERATOR


class ImageManagementServiceProvider(SingletonService):
    """Instance and method provider of Msvm_ImageManagementService."""

    classnames = (names.IMAGE_SERVICE,)
    service_name = names.IMAGE_SERVICE_NAME
    caption = "Image Management Service"
    description = "Manages the virtual media (.vhd, .iso, or .vfd files) for a virtual machine"

    def _submit(self, work: vhd.CreateDisk | vhd.CreateDifferencingDisk, name: str) -> Result:
        return self.start_job(name, work.description, work, classname=names.STORAGE_JOB,
                              storage_job_type=int(StorageJobType.VHD_CREATION))

    def _job(self, prepared: tuple[Any, Reservation], name: str, kind: StorageJobType) -> Result:
        work, reservation = prepared
        return self.start_job(name, work.description, work, classname=names.STORAGE_JOB,
                              storage_job_type=int(kind), reservation=reservation)

    @method("CreateDynamicVirtualHardDisk", _A, job=True, params=("Path", "MaxInternalSize"))
    def create_dynamic(self, target: CIMTarget, params: Params) -> Result:
        work = vhd.prepare_create(self.ctx.roots, _path(params, "Path"),
                                  param(params, "MaxInternalSize", required=False) or 0,
                                  fixed=False)
        return self._submit(work, "Create Dynamic Virtual Hard Disk")

    @method("CreateFixedVirtualHardDisk", _A, job=True, params=("Path", "MaxInternalSize"))
    def create_fixed(self, target: CIMTarget, params: Params) -> Result:
        work = vhd.prepare_create(self.ctx.roots, _path(params, "Path"),
                                  param(params, "MaxInternalSize"), fixed=True)
        return self._submit(work, "Create Fixed Virtual Hard Disk")

    @method("CreateDifferencingVirtualHardDisk", _A, job=True, params=("Path", "ParentPath"))
    def create_differencing(self, target: CIMTarget, params: Params) -> Result:
        work = vhd.prepare_differencing(self.ctx.roots, _path(params, "Path"),
                                        _path(params, "ParentPath"))
        return self._submit(work, "Create Differencing Virtual Hard Disk")

    @method("GetVirtualHardDiskInfo", _O, params=("Path",))
    def get_info(self, target: CIMTarget, params: Params) -> Result:
        facts = vhd.inspect(self.ctx.roots, self.ctx.host, _path(params, "Path"))
        info = vhd_info_instance(facts.info, facts.in_use, facts.in_saved_state)
        return int(ReturnCode.COMPLETED), {"Info": serialize_instance(info), "Job": None}


    @method("ExpandVirtualHardDisk", _A, job=True, params=("Path", "MaxInternalSize"))
    def expand(self, target: CIMTarget, params: Params) -> Result:
        prepared = vhd_edit.prepare_expand(self.ctx.roots, self.ctx.host, _path(params, "Path"),
                                           param(params, "MaxInternalSize"))
        return self._job(prepared, "Expand Virtual Hard Disk", StorageJobType.EXPANSION)

    @method("CompactVirtualHardDisk", _A, job=True, params=("Path",))
    def compact(self, target: CIMTarget, params: Params) -> Result:
        prepared = vhd_edit.prepare_compact(self.ctx.roots, self.ctx.host, _path(params, "Path"))
        return self._job(prepared, "Compact Virtual Hard Disk", StorageJobType.COMPACTION)

    @method("ConvertVirtualHardDisk", _A, job=True,
            params=("SourcePath", "DestinationPath", "Type"))
    def convert(self, target: CIMTarget, params: Params) -> Result:
        prepared = vhd_edit.prepare_convert(
            self.ctx.roots, self.ctx.host, _path(params, "SourcePath"),
            _path(params, "DestinationPath"), param(params, "Type"))
        return self._job(prepared, "Convert Virtual Hard Disk", StorageJobType.CONVERSION)

    @method("MergeVirtualHardDisk", _A, job=True, params=("SourcePath", "DestinationPath"))
    def merge(self, target: CIMTarget, params: Params) -> Result:
        prepared = vhd_chain.prepare_merge(self.ctx.roots, self.ctx.host,
                                           _path(params, "SourcePath"),
                                           _path(params, "DestinationPath"))
        return self._job(prepared, "Merge Virtual Hard Disk", StorageJobType.MERGING)

    @method("ReconnectParentVirtualHardDisk", _A, params=("ChildPath", "ParentPath", "Force"))
    def reconnect(self, target: CIMTarget, params: Params) -> Result:
        as_bool(params, "Force", False)  # checked for its type; it has no effect (the page)
        vhd_chain.reconnect(self.ctx.roots, self.ctx.host, _path(params, "ChildPath"),
                            _path(params, "ParentPath"))
        return int(ReturnCode.COMPLETED), {"Job": None}

    @method("ValidateVirtualHardDisk", _O, job=True, params=("Path",))
    def validate(self, target: CIMTarget, params: Params) -> Result:
        work = vhd_chain.prepare_validate(self.ctx.roots, self.ctx.host, _path(params, "Path"))
        return self.start_job("Validate Virtual Hard Disk", work.description, work,
                              classname=names.STORAGE_JOB,
                              storage_job_type=int(StorageJobType.VALIDATE))

    @method("CreateVirtualFloppyDisk", _A, job=True, params=("Path",))
    def create_floppy(self, target: CIMTarget, params: Params) -> Result:
        prepared = vhd_edit.prepare_floppy(self.ctx.roots, _path(params, "Path"))
        return self._job(prepared, "Create Virtual Floppy Disk", StorageJobType.VFD_CREATION)

    @method("Mount", _A, job=True, params=("Path",))
    def mount(self, target: CIMTarget, params: Params) -> Result:
        self.ctx.roots.confine(_path(params, "Path"), "Path")
        raise NotSupported(f"Mount is not supported on this host: {mount_unavailable()}")

    @method("Unmount", _A, params=("Path",))
    def unmount(self, target: CIMTarget, params: Params) -> Result:
        self.ctx.roots.confine(_path(params, "Path"), "Path")
        raise NotSupported(f"Unmount is not supported on this host: {mount_unavailable()}; no "
                           "image is mounted")


def mount_unavailable() -> str:
    """Why Mount cannot mount an image here (loopback mounting goes through qemu-nbd)."""
    if not os.path.isdir("/sys/module/nbd"):
        return ("the host has no nbd kernel module loaded (run modprobe nbd as root; a "
                "container usually cannot)")
    if os.geteuid() != 0:
        return "the service does not run as root, which connecting an nbd device needs"
    return "vsms does not implement mounting images through qemu-nbd yet"


def _path(params: Params, name: str) -> str:
    value = as_str(params, name)
    assert value is not None  # required
    return value
