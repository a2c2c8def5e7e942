"""Names for the numbers the service returns: ReturnValue, EnabledState, JobState, disk types.

The ReturnValue names are the ones the Hyper-V reference pages print. The reasons are what a
ReturnValue means for the method that returned it; the service log holds the exact cause.
"""

from __future__ import annotations

from vsms.cim.enums import EnabledState, JobState, ReturnCode, VirtualHardDiskType

RETURN_NAMES: dict[int, str] = {
    ReturnCode.COMPLETED: "Completed with No Error",
    ReturnCode.JOB_STARTED: "Method Parameters Checked - Job Started",
    ReturnCode.FAILED: "Failed",
    ReturnCode.ACCESS_DENIED: "Access Denied",
    ReturnCode.NOT_SUPPORTED: "Not Supported",
    ReturnCode.STATUS_UNKNOWN: "Status is unknown",
    ReturnCode.TIMEOUT: "Timeout",
    ReturnCode.INVALID_PARAMETER: "Invalid parameter",
    ReturnCode.SYSTEM_IN_USE: "System is in use",
    ReturnCode.INVALID_STATE: "Invalid state for this operation",
    ReturnCode.INCORRECT_DATA_TYPE: "Incorrect data type",
    ReturnCode.SYSTEM_NOT_AVAILABLE: "System is not available",
    ReturnCode.OUT_OF_MEMORY: "Out of memory",
    ReturnCode.FILE_NOT_FOUND: "File not found",
    ReturnCode.NOT_COMPATIBLE: "Not compatible",
}

STATE_NAMES: dict[int, str] = {
    EnabledState.UNKNOWN: "Unknown",
    EnabledState.ENABLED: "Running",
    EnabledState.DISABLED: "Off",
    EnabledState.PAUSED: "Paused",
    EnabledState.SUSPENDED: "Saved",
    EnabledState.STARTING: "Starting",
    EnabledState.SNAPSHOTTING: "Snapshotting",
    EnabledState.SAVING: "Saving",
    EnabledState.STOPPING: "Stopping",
    EnabledState.PAUSING: "Pausing",
    EnabledState.RESUMING: "Resuming",
}

JOB_STATE_NAMES: dict[int, str] = {s.value: s.name.replace("_", " ").title() for s in JobState}

DISK_TYPE_NAMES: dict[int, str] = {
    VirtualHardDiskType.FIXED: "Fixed",
    VirtualHardDiskType.DYNAMIC: "Dynamic",
    VirtualHardDiskType.DIFFERENCING: "Differencing",
}

_IMPORT = ("importvirtualsystem", "importvirtualsystemex", "getvirtualsystemimportsettingdata")
_EXPORT = ("exportvirtualsystem", "exportvirtualsystemex")
_DISK = ("createdynamicvirtualharddisk", "createfixedvirtualharddisk",
         "createdifferencingvirtualharddisk", "getvirtualharddiskinfo")

_REASONS: dict[tuple[str, int], str] = {
    **{(m, ReturnCode.INVALID_PARAMETER): (
        "the import directory does not exist, is not a directory or not a fully qualified path, "
        "or is the export root instead of the per-VM subdirectory the export created; "
        "or the import settings name a missing folder or an existing copy target")
       for m in _IMPORT},
    **{(m, ReturnCode.SYSTEM_IN_USE): (
        "the directory was already imported in place, or a virtual machine with the same ID "
        "exists (import with a new ID)") for m in _IMPORT},
    **{(m, ReturnCode.INVALID_PARAMETER): (
        "the virtual machine does not exist, the export directory is not a fully qualified "
        "path or does not exist, or the export subdirectory already exists and is not empty")
       for m in _EXPORT},
    **{(m, ReturnCode.INVALID_STATE): (
        "the virtual machine must be turned off (or saved, for ExportVirtualSystemEx) to be "
        "exported") for m in _EXPORT},
    **{(m, ReturnCode.INVALID_PARAMETER): (
        "the path or the size is not valid: use a fully qualified .vhd or .vhdx path whose "
        "folder exists and that is not taken, and a size the format allows") for m in _DISK},
    **{(m, ReturnCode.FILE_NOT_FOUND): "the disk image does not exist" for m in _DISK},
    ("requeststatechange", ReturnCode.INVALID_STATE): (
        "the virtual machine cannot go to that state from its current state (or is already in "
        "it)"),
    ("destroyvirtualsystem", ReturnCode.INVALID_STATE): (
        "the virtual machine must be turned off or saved before it is destroyed"),
}

_GENERIC: dict[int, str] = {
    ReturnCode.FAILED: "the service could not do it",
    ReturnCode.ACCESS_DENIED: "a path is outside the service's storage roots, or this account "
                              "may not do that",
    ReturnCode.NOT_SUPPORTED: "the service does not support this call or one of its values",
    ReturnCode.TIMEOUT: "the operation did not finish in time",
    ReturnCode.INVALID_PARAMETER: "a parameter was rejected",
    ReturnCode.SYSTEM_IN_USE: "the object is in use by another virtual machine or operation",
    ReturnCode.INVALID_STATE: "the object is not in a state that allows this",
    ReturnCode.INCORRECT_DATA_TYPE: "a parameter has the wrong type or cannot be parsed",
    ReturnCode.SYSTEM_NOT_AVAILABLE: "a backend (libvirt, qemu-img, the disk) failed",
    ReturnCode.OUT_OF_MEMORY: "the host is out of memory",
    ReturnCode.FILE_NOT_FOUND: "a file does not exist",
    ReturnCode.NOT_COMPATIBLE: "the virtual machine uses features this host does not support",
}


def return_name(code: int) -> str:
    """'Invalid parameter (32773)', or 'error N' for a code the reference does not list."""
    return f"{RETURN_NAMES.get(code, 'Unknown error')} ({code})"


def reason(method: str, code: int) -> str:
    """What ``code`` means when ``method`` returns it."""
    text = _REASONS.get((method.lower(), code)) or _GENERIC.get(code, "no reason known")
    return f"{text} (the service log has the exact cause)"


def state_name(code: int | None) -> str:
    if code is None:
        return "Unknown"
    return STATE_NAMES.get(int(code), f"state {code}")


def job_state_name(code: int | None) -> str:
    if code is None:
        return "Unknown"
    return JOB_STATE_NAMES.get(int(code), f"state {code}")
