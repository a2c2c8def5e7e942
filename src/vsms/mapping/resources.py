"""Add, modify and remove a VM's devices from client RASDs (Add/Modify/Remove…Resources).

Each function changes the ``VirtualSystem`` it is given **in place**: callers work on a copy and
define it only when every RASD of the call was accepted, so a refused call changes nothing.
Every refusal names the resource and the problem. Image files are checked through the
``ResourceEnv.check_image`` callable the caller supplies (confinement, existence, format probe).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import pywbem

from vsms.errors import InUse, InvalidParameter, NotSupported
from vsms.mapping import ids
from vsms.mapping.checks import slots
from vsms.mapping.devices import Kind, blank, classify, device_instances, label, prop
from vsms.model.vm import (
    COM_PORT_IDS,
    IDE_CONTROLLERS,
    PIPE_PREFIX,
    SCSI_CONTROLLERS_MAX,
    Controller,
    ControllerKind,
    Drive,
    DriveKind,
    ImageFormat,
    Media,
    NetworkAdapter,
    VirtualSystem,
    new_guid,
)

ImageChecker = Callable[[str, DriveKind], tuple[str, ImageFormat]]
"""(client path, kind of drive) -> (resolved path, format); raises a VsmsError when refused."""

HYPERV_MAC_PREFIX = "00:15:5D"
_BAD_SWITCH = re.compile(r"[/\\\"\x00-\x1f]")
_TEXT = re.compile(r"[^\x00-\x1f\x7f]{1,256}")


@dataclass
class ResourceEnv:
    """What adding or modifying devices needs beyond the VM: one per method call."""

    check_image: ImageChecker
    macs_in_use: frozenset[str] = frozenset()  # MACs of every VM on the host (upper-case)
    # InstanceIDs the client gave new RASDs of this call -> the device ids they received, so a
    # later RASD of the same call can name an earlier one as its Parent.
    aliases: dict[str, str] = field(default_factory=dict)
    # the check of a serial port's socket path (resolved path or a VsmsError); None: no ports
    check_socket: Callable[[str], str] | None = None
    # an adapter's Connection naming an Msvm_SwitchPort -> (libvirt network, port Name, switch
    # Name), or a VsmsError (no such switch or port, port taken); None: no switches here
    resolve_port: Callable[[str], tuple[str, str, str]] | None = None


def _int(rasd: pywbem.CIMInstance, name: str) -> int | None:
    value = prop(rasd, name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise InvalidParameter(f"{label(rasd)}: {name} {value!r} is not a number") from None


def _own_device(vs: VirtualSystem, instance_id: str, what: str) -> str:
    guid, dev = ids.parse_device_id(instance_id)
    if guid != vs.guid.upper():
        raise InvalidParameter(f"{what} {instance_id!r} belongs to virtual machine {guid}, not to "
                               f"'{vs.name}' ({vs.guid})")
    return dev


def _parent_id(vs: VirtualSystem, rasd: pywbem.CIMInstance, env: ResourceEnv) -> str:
    ref = prop(rasd, "Parent")
    if blank(ref):
        raise InvalidParameter(f"{label(rasd)} has no Parent: set it to the path of the "
                               "controller (for a drive) or drive (for an image) to attach it to")
    bare = env.aliases.get(ref.strip().lower()) if isinstance(ref, str) else None
    if bare is not None:
        return bare
    iid = ids.instance_id_from_ref(ref)
    alias = env.aliases.get(iid.lower())
    return alias if alias is not None else _own_device(vs, iid, "Parent")


def _controller(vs: VirtualSystem, rasd: pywbem.CIMInstance, env: ResourceEnv) -> Controller:
    dev = _parent_id(vs, rasd, env)
    ctrl = vs.controller(dev)
    if ctrl is None:
        raise InvalidParameter(f"{label(rasd)}: parent controller {dev} not found in '{vs.name}': "
                               "pass the path of one of its IDE or SCSI controller settings")
    return ctrl


def _drive(vs: VirtualSystem, rasd: pywbem.CIMInstance, env: ResourceEnv) -> Drive:
    dev = _parent_id(vs, rasd, env)
    drive = vs.drive(dev)
    if drive is None:
        raise InvalidParameter(f"{label(rasd)}: parent drive {dev} not found in '{vs.name}': pass "
                               "the path of one of its disk or DVD drive settings")
    return drive


def _slot(vs: VirtualSystem, rasd: pywbem.CIMInstance, ctrl: Controller,
          kind: DriveKind, moving: str = "") -> int:
    if kind is DriveKind.DVD and ctrl.kind is ControllerKind.SCSI:
        raise InvalidParameter(f"{label(rasd)}: DVD drives attach to an IDE controller, not to "
                               f"SCSI controller {ctrl.index}")
    taken = {d.address: d for d in vs.drives if d.controller_id == ctrl.dev_id
             and d.dev_id != moving}
    name = f"{ctrl.kind.value.upper()} controller {ctrl.index}"
    slot = _int(rasd, "Address")
    if slot is None:
        free = [s for s in range(slots(ctrl.kind)) if s not in taken]
        if not free:
            raise InvalidParameter(f"{label(rasd)}: {name} has no free slot: remove a drive or "
                                   "use another controller")
        return free[0]
    if not 0 <= slot < slots(ctrl.kind):
        raise InvalidParameter(f"{label(rasd)}: slot {slot} does not exist on {name} (slots 0.."
                               f"{slots(ctrl.kind) - 1})")
    if slot in taken:
        raise InvalidParameter(f"{label(rasd)}: slot {slot} of {name} is taken by "
                               f"{taken[slot].kind.value} drive {taken[slot].dev_id}: choose a "
                               "free slot or remove that drive first")
    return slot


def _image_path(rasd: pywbem.CIMInstance) -> str:
    conn = prop(rasd, "Connection")
    path = conn[0] if isinstance(conn, list) and conn else conn
    if not isinstance(path, str) or not path.strip():
        raise InvalidParameter(f"{label(rasd)} has no image path: set Connection[0] to the full "
                               "path of the image file")
    return path


def _check_image(vs: VirtualSystem, rasd: pywbem.CIMInstance, kind: Kind, drive: Drive,
                 env: ResourceEnv, replacing: str = "") -> tuple[str, ImageFormat]:
    want = {Kind.HARD_DISK_IMAGE: DriveKind.DISK, Kind.ISO_IMAGE: DriveKind.DVD}.get(kind)
    if want is not None and drive.kind is not want:
        raise InvalidParameter(f"{label(rasd)}: a {kind.value} goes in a {want.value} drive, but "
                               f"drive {drive.dev_id} is a {drive.kind.value} drive")
    path, fmt = env.check_image(_image_path(rasd), drive.kind)
    if drive.kind is DriveKind.DISK:
        for m in vs.media:
            if m.dev_id != replacing and m.path == path:
                raise InvalidParameter(f"{label(rasd)}: image {path} is already attached to this "
                                       f"virtual machine (drive {m.drive_id})")
    return path, fmt


_PIPE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


def _com_port(vs: VirtualSystem, rasd: pywbem.CIMInstance, env: ResourceEnv, port: int) -> None:
    r"""Connect (or disconnect, with an empty Connection) serial port ``port``: a named pipe
    ``\\.\pipe\NAME`` (its socket is NAME in the VM's ExternalDataRoot) or the absolute host
    path of a Unix socket; either way inside the storage roots."""
    conn = prop(rasd, "Connection")
    if conn is None:
        return
    value = conn[0] if isinstance(conn, list) and conn else ("" if isinstance(conn, list)
                                                             else conn)
    if not isinstance(value, str):
        raise InvalidParameter(f"{label(rasd)}: Connection must name a pipe or a socket path")
    value = value.strip()
    if value.lower().startswith(PIPE_PREFIX):
        name = value[len(PIPE_PREFIX):]
        if not _PIPE_NAME.match(name):
            raise InvalidParameter(f"{label(rasd)}: pipe name {name!r} is not usable: give 1 to "
                                   "100 letters, digits, '.', '_' or '-'")
        if not vs.external_data_root:
            raise InvalidParameter(
                f"{label(rasd)}: the pipe {value} needs the virtual machine's ExternalDataRoot "
                f"(its socket is made there), and '{vs.name}' has none: give the host path of "
                "a Unix socket under the storage roots instead")
    elif value and not value.startswith("/"):
        raise InvalidParameter(f"{label(rasd)}: Connection {value!r} is neither a named pipe "
                               f"({PIPE_PREFIX}NAME) nor the absolute path of a Unix socket")
    vs.com_ports = [*vs.com_ports, "", ""][:len(COM_PORT_IDS)]
    vs.com_ports[port] = value
    if value:
        if env.check_socket is None:
            raise NotSupported(f"{label(rasd)}: serial ports cannot be connected here")
        env.check_socket(vs.com_socket(port))


def _link(vs: VirtualSystem, rasd: pywbem.CIMInstance, env: ResourceEnv,
          nic: NetworkAdapter | None) -> tuple[str, str, str]:
    """(libvirt network, switch port, switch Name) an adapter's Connection names: the path of
    an Msvm_SwitchPort (resolved by ``env.resolve_port``), the bare name of a libvirt network,
    or nothing (not connected). NULL keeps the current connection."""
    current = (nic.switch, nic.port, nic.switch_id) if nic is not None else ("", "", "")
    conn = prop(rasd, "Connection")
    if conn is None:
        return current
    value = conn[0] if isinstance(conn, list) and conn else ("" if isinstance(conn, list)
                                                             else conn)
    if not isinstance(value, str):
        raise InvalidParameter(f"{label(rasd)}: Connection must name a virtual switch port")
    if not value.strip():
        return ("", "", "")
    if "msvm_switchport" in value.lower():
        if env.resolve_port is None:
            raise NotSupported(f"{label(rasd)}: switch ports cannot be connected here")
        link = env.resolve_port(value.strip())
        for other in vs.nics:
            if other is not nic and (other.switch_id, other.port) == (link[2], link[1]):
                raise InUse(f"{label(rasd)}: switch port {link[1]} is already connected to "
                            f"network adapter {other.dev_id} of this virtual machine")
        return link
    if _BAD_SWITCH.search(value):
        raise InvalidParameter(f"{label(rasd)}: Connection {value!r} is not a virtual switch "
                               "port path nor a network name: give the path of an "
                               "Msvm_SwitchPort (CreateSwitchPort), or nothing to leave the "
                               "adapter unconnected")
    return (value.strip(), "", "")


def new_mac(taken: set[str]) -> str:
    """A random unicast MAC in Hyper-V's 00:15:5D range that is not in ``taken``."""
    for _ in range(1000):
        tail = secrets.token_bytes(3)
        mac = HYPERV_MAC_PREFIX + "".join(f":{b:02X}" for b in tail)
        if mac not in taken:
            return mac
    raise InvalidParameter("no free MAC address left in the 00:15:5D range")


def _mac(vs: VirtualSystem, rasd: pywbem.CIMInstance, env: ResourceEnv,
         nic: NetworkAdapter | None) -> tuple[str, bool]:
    """(MAC, StaticMacAddress) of a new (``nic`` None) or changed adapter."""
    current = nic.mac if nic is not None else None
    taken = {n.mac.upper() for n in vs.nics if n.mac != current} | set(env.macs_in_use)
    address = prop(rasd, "Address")
    static = prop(rasd, "StaticMacAddress")
    if static is not None and not isinstance(static, bool):
        raise InvalidParameter(f"{label(rasd)}: StaticMacAddress must be TRUE or FALSE")
    given = isinstance(address, str) and address.strip() and address.strip("0:-. ")
    keep = static if static is not None else (nic.static_mac if nic is not None else True)
    if static is False or not given:  # as Hyper-V: Address is ignored unless static
        return (current if current is not None else new_mac(taken)), keep
    mac = ids.mac_from_address(str(address))
    if mac != current and mac in {n.mac.upper() for n in vs.nics}:
        raise InvalidParameter(f"{label(rasd)}: MAC address {mac} is already used by another "
                               "network adapter of this virtual machine")
    return mac, True


def _identifiers(rasd: pywbem.CIMInstance, current: list[str]) -> list[str]:
    value = prop(rasd, "VirtualSystemIdentifiers")
    if value is None:
        return current
    items = value if isinstance(value, list) else [value]
    if any(not isinstance(i, str) or not _TEXT.fullmatch(i.strip()) or "," in i for i in items):
        raise InvalidParameter(f"{label(rasd)}: VirtualSystemIdentifiers must be strings such as "
                               "'{GUID}', without commas or control characters")
    return [i.strip() for i in items]


def _element_name(vs: VirtualSystem, rasd: pywbem.CIMInstance, dev: str) -> None:
    """Keep the ElementName a client gave the device (clients find devices again by it)."""
    name = prop(rasd, "ElementName")
    if blank(name):
        return
    if not isinstance(name, str) or not _TEXT.fullmatch(name.strip()):
        raise InvalidParameter(f"{label(rasd)}: ElementName must be text of at most 256 "
                               "characters without control characters")
    vs.element_names[dev] = name.strip()


# What add/modify read from a RASD of each kind (kept in the model); every other property a
# client sets must equal what the service returns for the device, or the call is refused.
_READ_BY_ALL = frozenset({"instanceid", "resourcetype", "resourcesubtype", "elementname"})
_READ: dict[Kind, frozenset[str]] = {
    Kind.MEMORY: frozenset({"virtualquantity"}),
    Kind.PROCESSOR: frozenset({"virtualquantity"}),
    Kind.DISK_DRIVE: frozenset({"parent", "address"}),
    Kind.DVD_DRIVE: frozenset({"parent", "address"}),
    Kind.HARD_DISK_IMAGE: frozenset({"parent", "connection"}),
    Kind.ISO_IMAGE: frozenset({"parent", "connection"}),
    Kind.IMAGE: frozenset({"parent", "connection"}),
    Kind.SYNTHETIC_NIC: frozenset({"address", "connection", "staticmacaddress",
                                   "virtualsystemidentifiers"}),
    Kind.EMULATED_NIC: frozenset({"address", "connection", "staticmacaddress"}),
    Kind.SERIAL_PORT: frozenset({"connection"}),
}


def _norm(value: object) -> object:
    """A value as compared with what the service returns (None: not set)."""
    if isinstance(value, list | tuple):
        items = tuple(_norm(v) for v in value)
        return items or None
    if isinstance(value, bool):
        return str(value).lower()
    text = "" if value is None else str(value).strip().casefold()
    return text or None


def _served(vs: VirtualSystem) -> dict[str, pywbem.CIMInstance]:
    return {str(i.path.keybindings["InstanceID"]).upper(): i for i in device_instances(vs)}


def _check_kept(vs: VirtualSystem, rasd: pywbem.CIMInstance, kind: Kind, dev: str,
                before: dict[str, pywbem.CIMInstance] | None = None) -> None:
    """Refuse (32773, naming the property) a value the client set that the device does not
    keep: nothing a client sets is silently dropped. A value the device had ``before`` the
    change (a client sends back what it read) is not a request."""
    iid = ids.device_id(vs.guid, dev).upper()
    served = _served(vs)[iid]
    old = (before or {}).get(iid)
    read = _READ_BY_ALL | _READ.get(kind, frozenset())
    for name, p in rasd.properties.items():
        given = _norm(p.value)
        if name.lower() in read or given is None:
            continue
        have = prop(served, name)
        if given != _norm(have) and (old is None or given != _norm(prop(old, name))):
            raise InvalidParameter(
                f"{label(rasd)}: {name} cannot be set to {p.value!r}: a {kind.value} of this "
                f"service has {name} {have!r}; leave {name} NULL or as the service returns it")


def _quantity(vs: VirtualSystem, rasd: pywbem.CIMInstance, kind: Kind) -> None:
    value = _int(rasd, "VirtualQuantity")
    if value is None:
        return
    if kind is Kind.MEMORY:
        if prop(rasd, "DynamicMemoryEnabled") is True:
            raise NotSupported(f"{label(rasd)}: dynamic memory is not supported; set "
                               "DynamicMemoryEnabled to FALSE")
        vs.memory_mb = value  # its range is the validator's (vsms.mapping.checks), host's limits
    else:
        vs.processors = value


def add_resource(vs: VirtualSystem, rasd: pywbem.CIMInstance, env: ResourceEnv, *,
                 defining: bool = False) -> str:
    """Add the device ``rasd`` describes to ``vs`` (in place) and return its new device id.

    Memory and processor settings exist once per VM: when ``defining`` they are applied to the
    defaults, otherwise they are refused (change them with ModifyVirtualSystemResources).
    """
    kind = classify(rasd)
    dev = new_guid()
    if kind is Kind.SERIAL_PORT:
        raise InvalidParameter(f"{label(rasd)}: a virtual machine has exactly two serial ports "
                               "(COM 1 and COM 2): connect one with ModifyVirtualSystemResources")
    if kind in (Kind.MEMORY, Kind.PROCESSOR):
        if not defining:
            raise InvalidParameter(f"{label(rasd)}: a virtual machine has exactly one {kind.value} "
                                   "setting: change it with ModifyVirtualSystemResources")
        _quantity(vs, rasd, kind)
        dev = vs.memory_dev_id if kind is Kind.MEMORY else vs.processor_dev_id
    elif kind in (Kind.IDE_CONTROLLER, Kind.SCSI_CONTROLLER):
        ckind = ControllerKind.IDE if kind is Kind.IDE_CONTROLLER else ControllerKind.SCSI
        limit = IDE_CONTROLLERS if ckind is ControllerKind.IDE else SCSI_CONTROLLERS_MAX
        used = {c.index for c in vs.controllers if c.kind is ckind}
        free = [i for i in range(limit) if i not in used]
        if not free:
            raise InvalidParameter(
                f"{label(rasd)}: a virtual machine has at most {limit} "
                f"{ckind.value.upper()} controllers and '{vs.name}' has them all")
        vs.controllers.append(Controller(dev, ckind, free[0]))
    elif kind in (Kind.DISK_DRIVE, Kind.DVD_DRIVE):
        dkind = DriveKind.DISK if kind is Kind.DISK_DRIVE else DriveKind.DVD
        ctrl = _controller(vs, rasd, env)
        vs.drives.append(Drive(dev, dkind, ctrl.dev_id, _slot(vs, rasd, ctrl, dkind)))
    elif kind in (Kind.HARD_DISK_IMAGE, Kind.ISO_IMAGE, Kind.IMAGE):
        drive = _drive(vs, rasd, env)
        held = vs.media_in(drive.dev_id)
        if held is not None:
            raise InvalidParameter(
                f"{label(rasd)}: drive {drive.dev_id} already holds {held.path}: "
                "remove that image first or modify it")
        path, fmt = _check_image(vs, rasd, kind, drive, env)
        vs.media.append(Media(dev, drive.dev_id, path, fmt))
    else:
        network, port, switch_id = _link(vs, rasd, env, None)
        mac, static = _mac(vs, rasd, env, None)
        vs.nics.append(NetworkAdapter(dev, mac, network, synthetic=kind is Kind.SYNTHETIC_NIC,
                                      static_mac=static, identifiers=_identifiers(rasd, []),
                                      port=port, switch_id=switch_id))
    _element_name(vs, rasd, dev)
    _check_kept(vs, rasd, kind, dev)
    iid = prop(rasd, "InstanceID")
    if isinstance(iid, str) and iid.strip() and not _names_own_device(vs, iid):
        env.aliases[iid.strip().lower()] = dev
    return dev


def _names_own_device(vs: VirtualSystem, instance_id: str) -> bool:
    """True when ``instance_id`` is already the InstanceID of a device of ``vs`` (a copied
    RASD): such an ID keeps naming that device, it never becomes an alias."""
    try:
        guid, _ = ids.parse_device_id(instance_id)
    except InvalidParameter:
        return False
    return guid == vs.guid.upper()


def modify_resource(vs: VirtualSystem, rasd: pywbem.CIMInstance, env: ResourceEnv) -> str:
    """Apply a client's changed RASD to the device its InstanceID names (in place); returns the
    device id. NULL properties keep their value."""
    kind = classify(rasd)
    before = _served(vs)
    dev = _modify(vs, rasd, env, kind)
    _element_name(vs, rasd, dev)
    _check_kept(vs, rasd, kind, dev, before)
    return dev


def _modify(vs: VirtualSystem, rasd: pywbem.CIMInstance, env: ResourceEnv, kind: Kind) -> str:
    iid = prop(rasd, "InstanceID")
    if not isinstance(iid, str) or not iid.strip():
        raise InvalidParameter(f"{label(rasd)} has no InstanceID: pass the setting data as this "
                               "service returned it, with its InstanceID")
    dev = _own_device(vs, iid, "InstanceID")
    mismatch = InvalidParameter(f"{label(rasd)}: device {dev} of '{vs.name}' is not a "
                                f"{kind.value}")
    if dev in (vs.memory_dev_id, vs.processor_dev_id):
        if kind is not (Kind.MEMORY if dev == vs.memory_dev_id else Kind.PROCESSOR):
            raise mismatch
        _quantity(vs, rasd, kind)
        return dev
    if dev in COM_PORT_IDS:
        if kind is not Kind.SERIAL_PORT:
            raise mismatch
        _com_port(vs, rasd, env, COM_PORT_IDS.index(dev))
        return dev
    ctrl = vs.controller(dev)
    drive = vs.drive(dev)
    media = next((m for m in vs.media if m.dev_id == dev), None)
    nic = next((n for n in vs.nics if n.dev_id == dev), None)
    if ctrl is not None:
        want = Kind.IDE_CONTROLLER if ctrl.kind is ControllerKind.IDE else Kind.SCSI_CONTROLLER
        if kind is not want:
            raise mismatch
    elif drive is not None:
        if kind is not (Kind.DISK_DRIVE if drive.kind is DriveKind.DISK else Kind.DVD_DRIVE):
            raise mismatch
        target = _controller(vs, rasd, env) if not blank(prop(rasd, "Parent")) else None
        target = target or vs.controller(drive.controller_id)
        assert target is not None
        if target.dev_id != drive.controller_id or _int(rasd, "Address") not in (None,
                                                                                   drive.address):
            drive.address = _slot(vs, rasd, target, drive.kind, moving=drive.dev_id)
            drive.controller_id = target.dev_id
    elif media is not None:
        if kind not in (Kind.HARD_DISK_IMAGE, Kind.ISO_IMAGE, Kind.IMAGE):
            raise mismatch
        holder = vs.drive(media.drive_id)
        if not blank(prop(rasd, "Parent")):
            holder = _drive(vs, rasd, env)
            held = vs.media_in(holder.dev_id)
            if held is not None and held.dev_id != dev:
                raise InvalidParameter(f"{label(rasd)}: drive {holder.dev_id} already holds "
                                       f"{held.path}")
        assert holder is not None
        if prop(rasd, "Connection") is not None or holder.dev_id != media.drive_id:
            media.path, media.format = _check_image(vs, rasd, kind, holder, env, replacing=dev)
            media.drive_id = holder.dev_id
    elif nic is not None:
        if kind is not (Kind.SYNTHETIC_NIC if nic.synthetic else Kind.EMULATED_NIC):
            raise mismatch
        nic.mac, nic.static_mac = _mac(vs, rasd, env, nic)
        nic.switch, nic.port, nic.switch_id = _link(vs, rasd, env, nic)
        nic.identifiers = _identifiers(rasd, nic.identifiers)
    else:
        raise InvalidParameter(f"{label(rasd)}: '{vs.name}' has no device {dev}")
    return dev


def remove_resource(vs: VirtualSystem, ref: object) -> list[str]:
    """Remove the device a RASD path (or InstanceID) names, with what hangs off it (a drive's
    image, a SCSI controller's drives); returns the removed device ids."""
    dev = _own_device(vs, ids.instance_id_from_ref(ref), "ResourceSettingData")
    if dev in COM_PORT_IDS:
        raise InvalidParameter(f"COM {COM_PORT_IDS.index(dev) + 1} of '{vs.name}' cannot be "
                               "removed: disconnect it (Connection NULL or empty) instead")
    if dev in (vs.memory_dev_id, vs.processor_dev_id):
        what = "memory" if dev == vs.memory_dev_id else "processor"
        raise InvalidParameter(f"the {what} setting of '{vs.name}' cannot be removed: change it "
                               "with ModifyVirtualSystemResources")
    ctrl = vs.controller(dev)
    if ctrl is not None and ctrl.kind is ControllerKind.IDE:
        raise InvalidParameter(f"IDE controller {ctrl.index} of '{vs.name}' cannot be removed: "
                               "every virtual machine has its two IDE controllers")
    drives = [d.dev_id for d in vs.drives if d.dev_id == dev or d.controller_id == dev]
    media = [m.dev_id for m in vs.media if m.dev_id == dev or m.drive_id in drives]
    nics = [n.dev_id for n in vs.nics if n.dev_id == dev]
    removed = ([dev] if ctrl is not None else []) + drives + media + nics
    if not removed:
        raise InvalidParameter(f"'{vs.name}' ({vs.guid}) has no device {dev}: it was removed "
                               "already or the path is wrong")
    vs.controllers = [c for c in vs.controllers if c.dev_id not in removed]
    vs.drives = [d for d in vs.drives if d.dev_id not in removed]
    vs.media = [m for m in vs.media if m.dev_id not in removed]
    vs.nics = [n for n in vs.nics if n.dev_id not in removed]
    for gone in removed:
        vs.element_names.pop(gone, None)
    return removed
