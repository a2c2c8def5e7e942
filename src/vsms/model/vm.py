"""A virtual machine as vsms sees it, independent of CIM and of libvirt.

Device identifiers (``dev_id``) are short GUID strings local to the VM; the CIM InstanceID of a
device is derived from the VM GUID and the dev_id (see ``vsms.mapping.ids``), so giving a VM a new
GUID re-derives every InstanceID.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum


def new_guid() -> str:
    """A new upper-case GUID without braces, the way Hyper-V writes VM and job IDs."""
    return str(uuid.uuid4()).upper()


def new_serial() -> str:
    """A new SMBIOS serial number the way Hyper-V writes them: 30 random decimal digits in
    groups of four (``1234-5678-9012-3456-7890-1234-56``)."""
    digits = "".join(str(secrets.randbelow(10)) for _ in range(30))
    return "-".join(digits[i:i + 4] for i in range(0, 30, 4))


class ControllerKind(StrEnum):
    IDE = "ide"
    SCSI = "scsi"


class DriveKind(StrEnum):
    DISK = "disk"
    DVD = "dvd"


class ImageFormat(StrEnum):
    """On-disk image formats, named as qemu-img names them (VHD is ``vpc``)."""

    VHD = "vpc"
    VHDX = "vhdx"
    QCOW2 = "qcow2"
    RAW = "raw"


# the two serial ports every VM has (COM 1, COM 2): fixed device ids (the RASD InstanceIDs still
# carry the VM GUID) and the Windows named-pipe prefix of their Connection
COM_PORT_IDS = ("C0A1B2C3-0000-4000-8000-00000000C0A1", "C0A1B2C3-0000-4000-8000-00000000C0A2")
PIPE_PREFIX = "\\\\.\\pipe\\"

IDE_CONTROLLERS = 2
IDE_SLOTS = 2
SCSI_CONTROLLERS_MAX = 4
SCSI_SLOTS = 64


@dataclass
class Controller:
    dev_id: str
    kind: ControllerKind
    index: int  # 0..1 for IDE, 0..3 for SCSI


@dataclass
class Drive:
    """A disk or DVD drive in a controller slot (RASD type 22 or 16)."""

    dev_id: str
    kind: DriveKind
    controller_id: str
    address: int  # slot on the controller


@dataclass
class Media:
    """An image inserted in a drive (RASD type 21): a VHD/VHDX/qcow2 disk or an ISO."""

    dev_id: str
    drive_id: str
    path: str
    format: ImageFormat


@dataclass
class NetworkAdapter:
    dev_id: str
    mac: str  # "00:15:5D:xx:xx:xx" (upper-case, colon-separated)
    switch: str = ""  # name of the virtual switch (libvirt network); "" = not connected
    synthetic: bool = True
    static_mac: bool = True  # StaticMacAddress: FALSE = the service chose the MAC
    identifiers: list[str] = field(default_factory=list)  # VirtualSystemIdentifiers ([] = {dev_id})
    # the switch port it is connected to (Msvm_SwitchPort Name) and that switch's Name (GUID);
    # "" when the adapter names its network directly or is not connected
    port: str = ""
    switch_id: str = ""


@dataclass
class Snapshot:
    """A snapshot of a VM: its settings as they were (``config``, whose media paths are the
    frozen images) and its place in the VM's tree (``parent``: "" for a root)."""

    id: str  # a GUID of its own: the snapshot's VSSD is ``Microsoft:<id>``
    name: str  # ElementName, ``<VM name> - (<date> - <time>)`` unless renamed
    created: datetime
    parent: str
    config: VirtualSystem
    memory: str = ""  # the file of its memory state (applies as Suspended); "" disk-only


@dataclass
class VirtualSystem:
    guid: str
    name: str
    memory_mb: int = 512
    processors: int = 1
    controllers: list[Controller] = field(default_factory=list)
    drives: list[Drive] = field(default_factory=list)
    media: list[Media] = field(default_factory=list)
    nics: list[NetworkAdapter] = field(default_factory=list)
    notes: str = ""
    boot_order: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    external_data_root: str = ""
    snapshot_data_root: str = ""
    scope_of_residence: str = ""
    # lineage: where this VM came from ("" when defined here)
    imported_from: str = ""
    # ElementName a client gave a device (dev_id -> name); devices not listed show their default
    element_names: dict[str, str] = field(default_factory=dict)
    # SMBIOS serial numbers the guest reads from its firmware (system, base board, chassis);
    # "" = none (a VM defined before vsms wrote them)
    bios_serial: str = field(default_factory=new_serial)
    baseboard_serial: str = field(default_factory=new_serial)
    chassis_serial: str = field(default_factory=new_serial)
    # Connection of COM 1 and COM 2 as the client gave it: "" (not connected), the absolute
    # host path of a Unix socket, or a named pipe ``\\.\pipe\NAME`` (see ``com_socket``)
    com_ports: list[str] = field(default_factory=lambda: ["", ""])
    # key-value pairs the host gives the guest (KVP HostExchangeItems): Name -> Data
    kvp_items: dict[str, str] = field(default_factory=dict)
    memory_dev_id: str = "4764334D-E001-4176-82EE-5594EC9B530E"
    processor_dev_id: str = "B637F347-6A0E-4DEC-AF52-BD70CB80A21D"
    # the libvirt domain type it is defined with, "kvm" or "qemu" (TCG); "" before it is. An
    # observation of the host, not a setting: not compared.
    accelerator: str = field(default="", compare=False)
    # the snapshot tree (``Snapshot.parent`` links), the snapshot the current state grew from
    # (Msvm_PreviousSettingData) and the one applied last (Msvm_LastAppliedSettingData); ""
    # when none
    snapshots: list[Snapshot] = field(default_factory=list)
    previous_snapshot: str = ""
    last_applied: str = ""
    # snapshot overlays of this VM that no longer hold anything it needs (the current state an
    # apply discarded, the images of removed snapshots), removed once nothing depends on them;
    # a disk a client detaches is never listed, so its file stays
    discarded: list[str] = field(default_factory=list)

    def controller(self, dev_id: str) -> Controller | None:
        return next((c for c in self.controllers if c.dev_id == dev_id), None)

    def drive(self, dev_id: str) -> Drive | None:
        return next((d for d in self.drives if d.dev_id == dev_id), None)

    def media_in(self, drive_id: str) -> Media | None:
        return next((m for m in self.media if m.drive_id == drive_id), None)

    def com_socket(self, index: int) -> str:
        r"""The host path of the Unix socket behind serial port ``index`` ("" when it is not
        connected): the path itself, or for a named pipe ``\\.\pipe\NAME`` the socket NAME in
        the VM's ExternalDataRoot ("" when it has none)."""
        conn = self.com_ports[index] if index < len(self.com_ports) else ""
        if conn.lower().startswith(PIPE_PREFIX):
            name = conn[len(PIPE_PREFIX):]
            return f"{self.external_data_root.rstrip('/')}/{name}" if self.external_data_root \
                else ""
        return conn

    def disk_media(self) -> list[Media]:
        """Media in disk drives (not DVDs): the virtual hard disks that export copies."""
        disks = {d.dev_id for d in self.drives if d.kind is DriveKind.DISK}
        return [m for m in self.media if m.drive_id in disks]


def default_controllers() -> list[Controller]:
    """The two emulated IDE controllers every Hyper-V VM has."""
    return [Controller(new_guid(), ControllerKind.IDE, i) for i in range(IDE_CONTROLLERS)]
