"""Every number that goes on the wire, as a named IntEnum.

Values come from the Hyper-V v1 reference pages (``root/virtualization``). A test checks each
enum against the ValueMap of the matching property or method in our MOF.
"""

from __future__ import annotations

from enum import IntEnum


class ReturnCode(IntEnum):
    """ReturnValue of the Msvm_* extrinsic methods (and the ErrorCode of a failed job)."""

    COMPLETED = 0
    JOB_STARTED = 4096
    FAILED = 32768
    ACCESS_DENIED = 32769
    NOT_SUPPORTED = 32770
    STATUS_UNKNOWN = 32771
    TIMEOUT = 32772
    INVALID_PARAMETER = 32773
    SYSTEM_IN_USE = 32774
    INVALID_STATE = 32775
    INCORRECT_DATA_TYPE = 32776
    SYSTEM_NOT_AVAILABLE = 32777
    OUT_OF_MEMORY = 32778
    FILE_NOT_FOUND = 32779
    NOT_COMPATIBLE = 32784  # CheckSystemCompatibilityInfo only (2008 R2)


class JobState(IntEnum):
    """CIM_ConcreteJob.JobState."""

    NEW = 2
    STARTING = 3
    RUNNING = 4
    SUSPENDED = 5
    SHUTTING_DOWN = 6
    COMPLETED = 7
    TERMINATED = 8
    KILLED = 9
    EXCEPTION = 10
    SERVICE = 11
    QUERY_PENDING = 12

    @property
    def finished(self) -> bool:
        return self in (JobState.COMPLETED, JobState.TERMINATED, JobState.KILLED,
                        JobState.EXCEPTION)


class JobRequestedState(IntEnum):
    """RequestedState parameter of Msvm_ConcreteJob.RequestStateChange."""

    START = 2
    SUSPEND = 3
    TERMINATE = 4
    KILL = 5
    SERVICE = 6


class StateChangeReturn(IntEnum):
    """DMTF return codes of CIM_ConcreteJob.RequestStateChange (not the 327xx Msvm codes)."""

    COMPLETED = 0
    NOT_SUPPORTED = 1
    UNKNOWN_ERROR = 2
    TIMEOUT = 3
    FAILED = 4
    INVALID_PARAMETER = 5
    IN_USE = 6
    TRANSITION_STARTED = 4096
    INVALID_STATE_TRANSITION = 4097
    TIMEOUT_NOT_SUPPORTED = 4098
    BUSY = 4099


class EnabledState(IntEnum):
    """Msvm_ComputerSystem.EnabledState as Hyper-V reports it for a virtual machine."""

    UNKNOWN = 0
    ENABLED = 2
    DISABLED = 3
    PAUSED = 32768
    SUSPENDED = 32769
    STARTING = 32770
    SNAPSHOTTING = 32771
    SAVING = 32773
    STOPPING = 32774
    PAUSING = 32776
    RESUMING = 32777


class RequestedState(IntEnum):
    """RequestedState parameter of Msvm_ComputerSystem.RequestStateChange (and the property)."""

    ENABLED = 2
    DISABLED = 3
    REBOOT = 10
    RESET = 11
    NOT_APPLICABLE = 12
    PAUSED = 32768
    SUSPENDED = 32769


class HealthState(IntEnum):
    UNKNOWN = 0
    OK = 5
    CRITICAL_FAILURE = 25


class OperationalStatus(IntEnum):
    """Msvm_ComputerSystem.OperationalStatus[0] and the R2 [1] extension values."""

    OK = 2
    DEGRADED = 3
    PREDICTIVE_FAILURE = 5
    STOPPED = 10
    IN_SERVICE = 11
    DORMANT = 15
    CREATING_SNAPSHOT = 32768
    APPLYING_SNAPSHOT = 32769
    DELETING_SNAPSHOT = 32770
    WAITING_TO_START = 32771
    MERGING_DISKS = 32772
    EXPORTING = 32773
    MIGRATING = 32774


class ResourceType(IntEnum):
    """Msvm_ResourceAllocationSettingData.ResourceType (v1 numbering, with 11)."""

    OTHER = 1
    COMPUTER_SYSTEM = 2
    PROCESSOR = 3
    MEMORY = 4
    IDE_CONTROLLER = 5
    PARALLEL_SCSI_HBA = 6
    FC_HBA = 7
    ISCSI_HBA = 8
    IB_HCA = 9
    ETHERNET_ADAPTER = 10
    OTHER_NETWORK_ADAPTER = 11
    IO_SLOT = 12
    IO_DEVICE = 13
    FLOPPY_DRIVE = 14
    CD_DRIVE = 15
    DVD_DRIVE = 16
    SERIAL_PORT = 17
    PARALLEL_PORT = 18
    USB_CONTROLLER = 19
    GRAPHICS_CONTROLLER = 20
    STORAGE_EXTENT = 21
    DISK = 22
    TAPE = 23
    OTHER_STORAGE_DEVICE = 24
    FIREWIRE = 25
    PARTITIONABLE_UNIT = 26
    BASE_PARTITIONABLE_UNIT = 27
    POWER_SUPPLY = 28
    COOLING_DEVICE = 29


class SettingType(IntEnum):
    """Msvm_VirtualSystemSettingData.SettingType."""

    INPUT = 1
    RECORDED = 2
    CURRENT = 3
    CAPABILITY = 4
    SNAPSHOT = 5
    GLOBAL = 32768  # Msvm_VirtualSystemGlobalSettingData only


class VirtualHardDiskType(IntEnum):
    """Msvm_VirtualHardDiskInfo.Type."""

    FIXED = 2
    DYNAMIC = 3
    DIFFERENCING = 4


class StorageJobType(IntEnum):
    """Msvm_StorageJob.Type."""

    INVALID = 0
    VHD_CREATION = 1
    VFD_CREATION = 2
    COMPACTION = 3
    EXPANSION = 4
    MERGING = 5
    CONVERSION = 6
    LOOPBACK_MOUNT = 7
    GET_INFO = 8
    VALIDATE = 9


class CopySnapshotConfiguration(IntEnum):
    """Msvm_VirtualSystemExportSettingData.CopySnapshotConfiguration."""

    EXPORT_ALL_SNAPSHOTS = 0
    EXPORT_NO_SNAPSHOTS = 1
    EXPORT_ONE_SNAPSHOT = 2


class ElementEffects(IntEnum):
    """Msvm_AffectedJobElement.ElementEffects."""

    UNKNOWN = 0
    OTHER = 1
    EXCLUSIVE_USE = 2
    PERFORMANCE_IMPACT = 3
    ELEMENT_INTEGRITY = 4
    CREATE = 5


VIRTUAL_SYSTEM_TYPE_HYPERV = 301
"""Msvm_VirtualSystemSettingData.VirtualSystemType for a Hyper-V virtual machine."""


class SummaryItem(IntEnum):
    """GetSummaryInformation RequestedInformation: the Msvm_SummaryInformation properties."""

    NAME = 0
    ELEMENT_NAME = 1
    CREATION_TIME = 2
    NOTES = 3
    NUMBER_OF_PROCESSORS = 4
    THUMBNAIL_SMALL = 5  # 80x60
    THUMBNAIL_MEDIUM = 6  # 160x120
    THUMBNAIL_LARGE = 7  # 320x240
    ALLOCATED_GPU = 8
    ENABLED_STATE = 100
    PROCESSOR_LOAD = 101
    PROCESSOR_LOAD_HISTORY = 102
    MEMORY_USAGE = 103
    HEARTBEAT = 104
    UPTIME = 105
    GUEST_OPERATING_SYSTEM = 106
    SNAPSHOTS = 107
    ASYNCHRONOUS_TASKS = 108
    HEALTH_STATE = 109
    OPERATIONAL_STATUS = 110
    STATUS_DESCRIPTIONS = 111
    MEMORY_AVAILABLE = 112
    AVAILABLE_MEMORY_BUFFER = 113


class HeartbeatStatus(IntEnum):
    """Msvm_HeartbeatComponent.OperationalStatus[0], also Msvm_SummaryInformation.Heartbeat."""

    OK = 2
    DEGRADED = 3
    NON_RECOVERABLE_ERROR = 7
    NO_CONTACT = 12
    LOST_COMMUNICATION = 13
