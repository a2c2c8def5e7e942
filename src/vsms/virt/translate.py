"""libvirt errors → vsms.errors, with a message that names the cause and the fix."""

from __future__ import annotations

import re

import libvirt

from vsms.errors import (
    InUse,
    InvalidState,
    NotFound,
    NotSupported,
    OperationFailed,
    SystemNotAvailable,
    VsmsError,
)

# Error codes that mean "the connection to the daemon is broken", not "the request was wrong".
_CONNECTION_CODES = frozenset({
    libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_RPC, libvirt.VIR_ERR_NO_CONNECT,
    libvirt.VIR_ERR_INVALID_CONN,
})
_CONNECTION_DOMAINS = frozenset({libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE})


_STOPPED_NETWORK = re.compile(r"network '([^']+)' is not active")


def message_of(exc: libvirt.libvirtError) -> str:
    return (exc.get_error_message() or str(exc)).strip()


def is_connection_error(exc: libvirt.libvirtError) -> bool:
    """True when the error says the daemon is gone or the socket broke."""
    code = exc.get_error_code()
    if code in (libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_INVALID_CONN):
        return True
    if code in _CONNECTION_CODES and exc.get_error_domain() in _CONNECTION_DOMAINS:
        return True
    text = message_of(exc).lower()
    return "client socket is closed" in text or "end of file while reading data" in text


def unreachable(uri: str, detail: str) -> SystemNotAvailable:
    return SystemNotAvailable(
        f"libvirt at {uri} is unreachable: {detail}; start libvirtd "
        "(for example '/usr/sbin/virtlogd -d; /usr/sbin/libvirtd -d') and retry")


def translate(exc: libvirt.libvirtError, uri: str, what: str) -> VsmsError:
    """The vsms error for a libvirt failure while doing ``what`` (e.g. "start VM 'x' (GUID)")."""
    code = exc.get_error_code()
    text = message_of(exc)
    if is_connection_error(exc):
        return unreachable(uri, text)
    if code == libvirt.VIR_ERR_NO_DOMAIN:
        return NotFound(f"cannot {what}: libvirt at {uri} has no such domain ({text}); "
                        "list the virtual machines and use an existing one")
    if "does not support live migration" in text:
        return NotSupported(
            f"cannot {what}: QEMU cannot save the memory of a VM whose disks are VHD or VHDX "
            f"({text}); turn the VM off instead, or use qcow2 or raw disks for VMs that must "
            "be saved")
    if "driver format value 'vhdx'" in text:
        return NotSupported(
            f"cannot {what}: libvirt at {uri} cannot attach VHDX images ({text}); convert the "
            "disk first, e.g. 'qemu-img convert -f vhdx -O qcow2 disk.vhdx disk.qcow2', or "
            "use a libvirt release that knows the vhdx format")
    stopped = _STOPPED_NETWORK.search(text)
    if stopped is not None:
        net = stopped.group(1)
        return InvalidState(
            f"cannot {what}: a network adapter is connected to the virtual switch whose libvirt "
            f"network {net} is stopped ({text}); start the switch with 'virsh net-start {net}', "
            "or connect the adapter to another switch or to none, and retry")
    if code == libvirt.VIR_ERR_CONFIG_UNSUPPORTED:
        return NotSupported(f"cannot {what}: libvirt at {uri} does not support this "
                            f"configuration ({text}); change the virtual machine's settings")
    if code == libvirt.VIR_ERR_OPERATION_INVALID:
        return InvalidState(f"cannot {what}: {text}")
    if code == libvirt.VIR_ERR_OPERATION_TIMEOUT or "state change lock" in text:
        return InUse(f"cannot {what}: libvirt is busy with another operation on it ({text}); "
                     "wait for that to finish and retry")
    if code in (libvirt.VIR_ERR_AUTH_FAILED, libvirt.VIR_ERR_AUTH_UNAVAILABLE):
        return SystemNotAvailable(f"cannot {what}: libvirt at {uri} refused access ({text}); "
                                  "run vsms as a user allowed to manage libvirt domains")
    return OperationFailed(f"libvirt could not {what}: {text}")
