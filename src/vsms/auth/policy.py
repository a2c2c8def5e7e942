"""The authorization decision table (the analogue of Hyper-V's UAC filtering).

Three roles, each including the one below it:

- ``reader``: the intrinsic read operations (classes, instances, associations, qualifiers,
  queries, pull enumerations) and nothing else;
- ``operator``: also start/stop/pause/save/reset virtual machines
  (Msvm_ComputerSystem.RequestStateChange), watch and cancel jobs, and the extrinsic methods that
  only read (GetSummaryInformation, GetVirtualHardDiskInfo, ...);
- ``administrator``: everything.

A denied extrinsic method answers ReturnValue 32769 (Access denied); a denied intrinsic operation
answers CIM_ERR_ACCESS_DENIED. :data:`METHODS` names the role each method of our MOF needs; a
method missing from it (or of an unknown class) needs ``administrator``, so a method added to the
MOF is closed until someone decides otherwise (a test checks the table against the MOF).
"""

from __future__ import annotations

from enum import IntEnum


class Role(IntEnum):
    """Ordered: a higher role may do everything a lower one may."""

    READER = 1
    OPERATOR = 2
    ADMINISTRATOR = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        """``administrator``/``operator``/``reader`` (any case); ValueError otherwise."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown role {text!r}: use one of "
                             f"{', '.join(r.label for r in reversed(cls))}") from None


#: DSP0200 intrinsic operations that only read; every role may run them.
READ_OPERATIONS = frozenset(name.lower() for name in (
    "GetClass", "EnumerateClasses", "EnumerateClassNames", "GetInstance", "EnumerateInstances",
    "EnumerateInstanceNames", "Associators", "AssociatorNames", "References", "ReferenceNames",
    "GetQualifier", "EnumerateQualifiers", "ExecQuery", "GetProperty", "EnumerationCount",
    "OpenEnumerateInstances", "OpenEnumerateInstancePaths", "OpenReferenceInstances",
    "OpenReferenceInstancePaths", "OpenAssociatorInstances", "OpenAssociatorInstancePaths",
    "OpenQueryInstances", "PullInstancesWithPath", "PullInstancePaths", "PullInstances",
    "CloseEnumeration"))

_A, _O = Role.ADMINISTRATOR, Role.OPERATOR
_JOB = {"KillJob": _O, "RequestStateChange": _O, "GetError": _O, "GetErrorEx": _O}
_SERVICE = {"RequestStateChange": _A, "StartService": _A, "StopService": _A}

#: class -> method -> the least role that may call it; every method of every class of our MOF.
METHODS: dict[str, dict[str, Role]] = {
    # virtual machines: state changes are the operator's job
    "Msvm_ComputerSystem": {"RequestStateChange": _O, "SetPowerState": _O},
    "CIM_ComputerSystem": {"RequestStateChange": _O, "SetPowerState": _O},
    "CIM_System": {"RequestStateChange": _O},
    "CIM_EnabledLogicalElement": {"RequestStateChange": _O},
    # jobs: watch (errors) and cancel
    "Msvm_ConcreteJob": dict(_JOB),
    "Msvm_StorageJob": dict(_JOB),
    "CIM_ConcreteJob": {"KillJob": _O, "RequestStateChange": _O, "GetError": _O},
    "CIM_Job": {"KillJob": _O},
    # services: starting or stopping the service itself is the administrator's
    "CIM_Service": dict(_SERVICE),
    "CIM_VirtualSystemManagementService": {
        **_SERVICE, "PlanVirtualSystem": _A, "InstantiateVirtualSystem": _A,
        "CloneVirtualSystem": _A},
    "Msvm_VirtualSystemManagementService": {
        **_SERVICE,
        # read-only
        "GetSummaryInformation": _O, "FormatError": _O, "GetSystemCompatibilityInfo": _O,
        "CheckSystemCompatibilityInfo": _O, "GetVirtualSystemThumbnailImage": _O,
        # define, modify, destroy, export, import: administrator only
        "DefineVirtualSystem": _A, "ModifyVirtualSystem": _A, "DestroyVirtualSystem": _A,
        "AddVirtualSystemResources": _A, "ModifyVirtualSystemResources": _A,
        "RemoveVirtualSystemResources": _A, "ExportVirtualSystem": _A,
        "ExportVirtualSystemEx": _A, "ImportVirtualSystem": _A, "ImportVirtualSystemEx": _A,
        "GetVirtualSystemImportSettingData": _A, "ModifyServiceSettings": _A,
        "AddKvpItems": _A, "ModifyKvpItems": _A, "RemoveKvpItems": _A,
        "CreateVirtualSystemSnapshot": _A, "ApplyVirtualSystemSnapshot": _A,
        "ApplyVirtualSystemSnapshotEx": _A, "RemoveVirtualSystemSnapshot": _A,
        "RemoveVirtualSystemSnapshotTree": _A, "PlanVirtualSystem": _A,
        "InstantiateVirtualSystem": _A, "CloneVirtualSystem": _A},
    "Msvm_ImageManagementService": {
        **_SERVICE,
        # read-only
        "GetVirtualHardDiskInfo": _O, "ValidateVirtualHardDisk": _O,
        # disk creation and change: administrator only
        "CreateDynamicVirtualHardDisk": _A, "CreateFixedVirtualHardDisk": _A,
        "CreateDifferencingVirtualHardDisk": _A, "CreateVirtualFloppyDisk": _A,
        "CompactVirtualHardDisk": _A, "ConvertVirtualHardDisk": _A,
        "ExpandVirtualHardDisk": _A, "MergeVirtualHardDisk": _A,
        "ReconnectParentVirtualHardDisk": _A, "Mount": _A, "Unmount": _A},
    # read-only, like GetSummaryInformation
    "Msvm_ProcessorPool": {"CalculatePossibleReserve": _O},
    "Msvm_AllocationCapabilities": {"CreateGoalSettings": _O},
    # virtual switches (issue 14): every change to the host's networking is the administrator's
    "Msvm_VirtualSwitchManagementService": {
        **_SERVICE, "BindExternalEthernetPort": _A, "ConnectSwitchPort": _A,
        "CreateInternalEthernetPort": _A, "CreateInternalEthernetPortDynamicMac": _A,
        "CreateSwitch": _A, "CreateSwitchPort": _A, "DeleteInternalEthernetPort": _A,
        "DeleteSwitch": _A, "DeleteSwitchPort": _A, "DisconnectSwitchPort": _A,
        "SetupSwitch": _A, "TeardownSwitch": _A, "UnbindExternalEthernetPort": _A},
    "Msvm_VirtualSwitch": {"RequestStateChange": _A, "SetPowerState": _A},
    **{cls: {"RequestStateChange": _A} for cls in (
        "CIM_ServiceAccessPoint", "CIM_ProtocolEndpoint", "CIM_LANEndpoint", "CIM_SwitchPort",
        "CIM_VLANEndpoint", "Msvm_SwitchPort", "Msvm_SwitchLANEndpoint", "Msvm_VmLANEndpoint",
        "Msvm_VLANEndpoint")},

    # asking the guest to shut down is a state change, like RequestStateChange
    "Msvm_ShutdownComponent": {"InitiateShutdown": _O},
}

_BY_LOWER = {cls.lower(): {m.lower(): r for m, r in methods.items()}
             for cls, methods in METHODS.items()}


def method_role(classname: str, method: str) -> Role:
    """The least role that may call ``classname.method`` (administrator when not listed)."""
    return _BY_LOWER.get(classname.lower(), {}).get(method.lower(), Role.ADMINISTRATOR)


def may_call(role: Role, classname: str, method: str) -> bool:
    """May ``role`` invoke the extrinsic method ``classname.method``?"""
    return role >= method_role(classname, method)


def operation_role(operation: str) -> Role:
    """The least role for an intrinsic operation: reader for reads, administrator otherwise."""
    return Role.READER if operation.lower() in READ_OPERATIONS else Role.ADMINISTRATOR


def may_run(role: Role, operation: str) -> bool:
    """May ``role`` run the intrinsic operation ``operation``?"""
    return role >= operation_role(operation)
