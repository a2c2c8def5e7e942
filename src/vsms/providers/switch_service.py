"""Msvm_VirtualSwitchManagementService: the singleton "nvspwmi" and its methods (issue 14).

Every method but SetupSwitch and TeardownSwitch completes within the call: 0 and its OUT
reference, or a refusal with nothing changed (32773 bad or unknown input, 32774 a name taken or
a switch/port still connected, 32775 the VM or switch in a state that forbids it).
SetupSwitch/TeardownSwitch run as jobs (4096 + Job), as the reference pages say. Switches are
host-wide, as in Hyper-V (docs/switches.md, *Tenancy*); VM adapters are those this instance
manages. The switch logic lives in ``vsms.operations.switches``.
"""

from __future__ import annotations

import logging

import pywbem

from vsms.auth.policy import Role
from vsms.cim.enums import ReturnCode
from vsms.errors import InvalidParameter
from vsms.mapping import switch_paths as sp
from vsms.operations.switches import SwitchOps
from vsms.providers.base import CIMTarget, SingletonService, method
from vsms.providers.common import Params, Result, as_str, param, parse_path
from vsms.providers.context import ServiceContext

log = logging.getLogger(__name__)
_A = Role.ADMINISTRATOR
_DONE = int(ReturnCode.COMPLETED)


def _ref(params: Params, name: str, classname: str, *, required: bool = True
         ) -> pywbem.CIMInstanceName | None:
    value = param(params, name, required=required)
    if value is None:
        return None
    path = parse_path(value, name)
    want = classname.lower()
    if path.classname.lower() != want and not (want == "cim_lanendpoint" and path.classname
                                               .lower().endswith("lanendpoint")):
        raise InvalidParameter(f"parameter {name} must reference an {classname}, not a "
                               f"{path.classname}")
    return path


def _uint(params: Params, name: str, default: int) -> int:
    value = param(params, name, required=False)
    if value is None:
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidParameter(f"parameter {name} must be a number, got {value!r}") from None
    if not 0 <= number <= 0xFFFFFFFF:
        raise InvalidParameter(f"parameter {name} must be a uint32, got {number}")
    return number


class SwitchServiceProvider(SingletonService):
    """Instance and method provider of Msvm_VirtualSwitchManagementService."""

    classnames = (sp.SERVICE,)
    service_name = sp.SERVICE_NAME
    caption = "Hyper-V Networking Management Service"
    description = "Provides Hyper-V Networking WMI management"

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.ops = SwitchOps(ctx.host, ctx.settings.state_dir, ctx.hostname,
                             allow_management=ctx.settings.switch_allow_management_interface)
        self.ops.recover()

    def instance(self) -> pywbem.CIMInstance:
        inst = super().instance()
        inst["EnabledState"] = pywbem.Uint16(5)  # Not Applicable, as the reference page says
        return inst

    def _port(self, params: Params, name: str) -> tuple[str, str]:
        path = _ref(params, name, sp.PORT)
        assert path is not None
        return sp.parse_port_path(path)

    def _switch_id(self, params: Params) -> str:
        path = _ref(params, "VirtualSwitch", sp.SWITCH)
        assert path is not None
        return sp.endpoint_key(path, "Name")

    @method("CreateSwitch", _A,
            params=("Name", "FriendlyName", "NumLearnableAddresses", "ScopeOfResidence"))
    def create_switch(self, target: CIMTarget, params: Params) -> Result:
        name = as_str(params, "Name") or ""
        sw = self.ops.create_switch(name, as_str(params, "FriendlyName", required=False) or "",
                                    _uint(params, "NumLearnableAddresses", 1024),
                                    as_str(params, "ScopeOfResidence", required=False) or "")
        return _DONE, {"CreatedVirtualSwitch": sp.switch_path(sw.id)}

    @method("DeleteSwitch", _A, params=("VirtualSwitch",))
    def delete_switch(self, target: CIMTarget, params: Params) -> Result:
        self.ops.delete_switch(self._switch_id(params))
        return _DONE, {}

    @method("CreateSwitchPort", _A,
            params=("VirtualSwitch", "Name", "FriendlyName", "ScopeOfResidence"))
    def create_port(self, target: CIMTarget, params: Params) -> Result:
        switch_id = self._switch_id(params)
        sw, port = self.ops.create_port(
            switch_id, as_str(params, "Name") or "",
            as_str(params, "FriendlyName", required=False) or "",
            as_str(params, "ScopeOfResidence", required=False) or "")
        return _DONE, {"CreatedSwitchPort": sp.port_path(sw.id, port.name)}

    @method("DeleteSwitchPort", _A, params=("SwitchPort",))
    def delete_port(self, target: CIMTarget, params: Params) -> Result:
        self.ops.delete_port(*self._port(params, "SwitchPort"))
        return _DONE, {}

    @method("ConnectSwitchPort", _A, params=("SwitchPort", "LANEndpoint"))
    def connect(self, target: CIMTarget, params: Params) -> Result:
        switch_id, port = self._port(params, "SwitchPort")
        endpoint = _ref(params, "LANEndpoint", "CIM_LANEndpoint")
        assert endpoint is not None
        sw_id, dependent = self.ops.connect(switch_id, port, endpoint)
        return _DONE, {"ActiveConnection": pywbem.CIMInstanceName(
            sp.ACTIVE_CONNECTION, keybindings={"Antecedent": sp.port_path(sw_id, port),
                                               "Dependent": dependent},
            namespace=sp.port_path(sw_id, port).namespace)}

    @method("DisconnectSwitchPort", _A, params=("SwitchPort",))
    def disconnect(self, target: CIMTarget, params: Params) -> Result:
        self.ops.disconnect(*self._port(params, "SwitchPort"))
        return _DONE, {}

    def _internal(self, params: Params, mac: str | None) -> Result:
        port = self.ops.create_internal(as_str(params, "Name") or "",
                                        as_str(params, "FriendlyName", required=False) or "", mac)
        return _DONE, {"CreatedInternalEthernetPort": sp.host_port_path(
            sp.INTERNAL_PORT, self.ctx.hostname, sp.internal_device_id(port.name))}

    @method("CreateInternalEthernetPort", _A, params=("Name", "FriendlyName", "MacAddress"))
    def create_internal(self, target: CIMTarget, params: Params) -> Result:
        return self._internal(params, as_str(params, "MacAddress") or "")

    @method("CreateInternalEthernetPortDynamicMac", _A, params=("Name", "FriendlyName"))
    def create_internal_dynamic(self, target: CIMTarget, params: Params) -> Result:
        return self._internal(params, None)

    def _device_id(self, params: Params, name: str, classname: str, *, required: bool = True
                   ) -> str | None:
        path = _ref(params, name, classname, required=required)
        return sp.endpoint_key(path, "DeviceID") if path is not None else None

    @method("DeleteInternalEthernetPort", _A, params=("InternalEthernetPort",))
    def delete_internal(self, target: CIMTarget, params: Params) -> Result:
        self.ops.delete_internal(self._device_id(params, "InternalEthernetPort",
                                                 sp.INTERNAL_PORT) or "")
        return _DONE, {}

    @method("BindExternalEthernetPort", _A, params=("ExternalEthernetPort",))
    def bind(self, target: CIMTarget, params: Params) -> Result:
        self.ops.bind(self._device_id(params, "ExternalEthernetPort", sp.EXTERNAL_PORT) or "")
        return _DONE, {}

    @method("UnbindExternalEthernetPort", _A, params=("ExternalEthernetPort",))
    def unbind(self, target: CIMTarget, params: Params) -> Result:
        self.ops.unbind(self._device_id(params, "ExternalEthernetPort", sp.EXTERNAL_PORT) or "")
        return _DONE, {}

    @method("SetupSwitch", _A, job=True, params=(
        "ExternalSwitchPort", "InternalSwitchPort", "ExternalEthernetPort",
        "InternalEthernetPortName", "InternalEthernetPortFriendlyName"))
    def setup(self, target: CIMTarget, params: Params) -> Result:
        work = self.ops.prepare_setup(
            self._port(params, "ExternalSwitchPort"), self._port(params, "InternalSwitchPort"),
            self._device_id(params, "ExternalEthernetPort", sp.EXTERNAL_PORT) or "",
            as_str(params, "InternalEthernetPortName") or "",
            as_str(params, "InternalEthernetPortFriendlyName", required=False) or "")
        return self.start_job("Setup Switch", work.description, work, cancellable=False)

    @method("TeardownSwitch", _A, job=True, params=("ExternalEthernetPort",
                                                    "InternalEthernetPort"))
    def teardown(self, target: CIMTarget, params: Params) -> Result:
        work = self.ops.prepare_teardown(
            self._device_id(params, "ExternalEthernetPort", sp.EXTERNAL_PORT) or "",
            self._device_id(params, "InternalEthernetPort", sp.INTERNAL_PORT, required=False))
        return self.start_job("Teardown Switch", work.description, work, cancellable=False)

