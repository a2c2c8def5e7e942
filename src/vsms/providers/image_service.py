"""Msvm_ImageManagementService: the singleton "vhdsvc" and its virtual hard disk methods.

CreateDynamicVirtualHardDisk, CreateFixedVirtualHardDisk and CreateDifferencingVirtualHardDisk
check their parameters at once (32773 / 32769 / 32770 / 32779 with nothing done) and then run as
Msvm_StorageJob jobs (4096 + Job). GetVirtualHardDiskInfo answers at once (0 + Info, an embedded
Msvm_VirtualHardDiskInfo). Every other method of the class returns 32770 Not supported and does
nothing.
"""

from __future__ import annotations

from vsms.auth.policy import Role
from vsms.cim import names
from vsms.cim.embedded import serialize_instance
from vsms.cim.enums import ReturnCode, StorageJobType
from vsms.mapping.vhd import vhd_info_instance
from vsms.operations import vhd
from vsms.providers.base import CIMTarget, SingletonService, method
from vsms.providers.common import Params, Result, as_str, param

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


def _path(params: Params, name: str) -> str:
    value = as_str(params, name)
    assert value is not None  # required
    return value
