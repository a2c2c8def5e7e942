"""Msvm_ImageManagementService: the singleton "vhdsvc" and its virtual hard disk methods.

CreateDynamicVirtualHardDisk, CreateFixedVirtualHardDisk and CreateDifferencingVirtualHardDisk
check their parameters at once (32773 / 32769 / 32770 / 32779 with nothing done) and then run as
Msvm_StorageJob jobs (4096 + Job). GetVirtualHardDiskInfo answers at once (0 + Info, an embedded
Msvm_VirtualHardDiskInfo). Every other method of the class returns 32770 Not supported and does
nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import pywbem

from vsms.cim import names
from vsms.cim.embedded import serialize_instance
from vsms.cim.enums import ReturnCode, StorageJobType
from vsms.mapping.vhd import vhd_info_instance
from vsms.operations import vhd
from vsms.providers.common import (
    Handler,
    Params,
    Result,
    as_str,
    guarded,
    job_started,
    not_supported,
    param,
)
from vsms.providers.context import ServiceContext

log = logging.getLogger(__name__)

CAPTION = "Image Management Service"
DESCRIPTION = "Manages the virtual media (.vhd, .iso, or .vfd files) for a virtual machine"
_ENABLED, _NOT_APPLICABLE, _OK, _HEALTH_OK = 2, 12, 2, 5


def service_path(hostname: str) -> pywbem.CIMInstanceName:
    return pywbem.CIMInstanceName(names.IMAGE_SERVICE, keybindings={
        "CreationClassName": names.IMAGE_SERVICE,
        "Name": names.IMAGE_SERVICE_NAME,
        "SystemCreationClassName": names.COMPUTER_SYSTEM,
        "SystemName": hostname,
    }, namespace=names.NAMESPACE)


def service_instance(hostname: str) -> pywbem.CIMInstance:
    u16 = pywbem.Uint16
    path = service_path(hostname)
    props = [pywbem.CIMProperty(k, v, type="string") for k, v in path.keybindings.items()]
    props += [
        pywbem.CIMProperty("Caption", CAPTION, type="string"),
        pywbem.CIMProperty("ElementName", CAPTION, type="string"),
        pywbem.CIMProperty("Description", DESCRIPTION, type="string"),
        pywbem.CIMProperty("InstallDate", None, type="datetime"),
        pywbem.CIMProperty("OperationalStatus", [u16(_OK)], type="uint16"),
        pywbem.CIMProperty("StatusDescriptions", ["OK"], type="string"),
        pywbem.CIMProperty("Status", "OK", type="string"),
        pywbem.CIMProperty("HealthState", u16(_HEALTH_OK), type="uint16"),
        pywbem.CIMProperty("EnabledState", u16(_ENABLED), type="uint16"),
        pywbem.CIMProperty("OtherEnabledState", None, type="string"),
        pywbem.CIMProperty("RequestedState", u16(_NOT_APPLICABLE), type="uint16"),
        pywbem.CIMProperty("EnabledDefault", u16(_ENABLED), type="uint16"),
        pywbem.CIMProperty("TimeOfLastStateChange", None, type="datetime"),
        pywbem.CIMProperty("PrimaryOwnerName", None, type="string"),
        pywbem.CIMProperty("PrimaryOwnerContact", None, type="string"),
        pywbem.CIMProperty("StartMode", "Automatic", type="string"),
        pywbem.CIMProperty("Started", True, type="boolean"),
    ]
    return pywbem.CIMInstance(names.IMAGE_SERVICE, properties=props, path=path)


class ImageManagementServiceProvider:
    """Instance and method provider of Msvm_ImageManagementService."""

    classnames = (names.IMAGE_SERVICE,)

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self._handlers: dict[str, Handler] = {
            "createdynamicvirtualharddisk": guarded(self.create_dynamic),
            "createfixedvirtualharddisk": guarded(self.create_fixed),
            "createdifferencingvirtualharddisk": guarded(self.create_differencing),
            "getvirtualharddiskinfo": guarded(self.get_info),
        }

    # ------------------------------------------------------------------ instances
    def enumerate(self, classname: str) -> Iterable[pywbem.CIMInstance]:
        return [service_instance(self.ctx.hostname)]

    def get(self, path: pywbem.CIMInstanceName) -> pywbem.CIMInstance | None:
        mine = service_path(self.ctx.hostname)
        want = {k.lower(): str(v).lower() for k, v in mine.keybindings.items()}
        got = {k.lower(): str(v).lower() for k, v in path.keybindings.items()}
        return service_instance(self.ctx.hostname) if got == want else None

    # ------------------------------------------------------------------ methods
    def invoke(self, target: pywbem.CIMInstanceName | pywbem.CIMClassName, method: str,
               params: Mapping[str, Any]) -> Result:
        handler = self._handlers.get(method.lower())
        if handler is None:
            log.info("%s.%s is not supported", names.IMAGE_SERVICE, method)
            return not_supported(names.IMAGE_SERVICE, method)
        return handler(target, params)

    def _submit(self, work: vhd.CreateDisk | vhd.CreateDifferencingDisk, name: str) -> Result:
        rec = self.ctx.jobs.submit(
            name=name, description=work.description, work=work, classname=names.STORAGE_JOB,
            storage_job_type=int(StorageJobType.VHD_CREATION))
        return job_started(rec)

    def create_dynamic(self, target: Any, params: Params) -> Result:
        work = vhd.prepare_create(self.ctx.roots, _path(params, "Path"),
                                  param(params, "MaxInternalSize", required=False) or 0,
                                  fixed=False)
        return self._submit(work, "Create Dynamic Virtual Hard Disk")

    def create_fixed(self, target: Any, params: Params) -> Result:
        work = vhd.prepare_create(self.ctx.roots, _path(params, "Path"),
                                  param(params, "MaxInternalSize"), fixed=True)
        return self._submit(work, "Create Fixed Virtual Hard Disk")

    def create_differencing(self, target: Any, params: Params) -> Result:
        work = vhd.prepare_differencing(self.ctx.roots, _path(params, "Path"),
                                        _path(params, "ParentPath"))
        return self._submit(work, "Create Differencing Virtual Hard Disk")

    def get_info(self, target: Any, params: Params) -> Result:
        facts = vhd.inspect(self.ctx.roots, self.ctx.host, _path(params, "Path"))
        info = vhd_info_instance(facts.info, facts.in_use, facts.in_saved_state)
        return int(ReturnCode.COMPLETED), {"Info": serialize_instance(info), "Job": None}


def _path(params: Params, name: str) -> str:
    value = as_str(params, name)
    assert value is not None  # required
    return value
