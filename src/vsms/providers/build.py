"""The list of providers serving root/virtualization, each built on the ServiceContext."""

from __future__ import annotations

from vsms.providers.base import ServiceProvider
from vsms.providers.components import ComponentProvider, ShutdownComponentProvider
from vsms.providers.computer_system import ComputerSystemProvider
from vsms.providers.context import ServiceContext
from vsms.providers.devices import DeviceAssociationProvider, LogicalDeviceProvider
from vsms.providers.export_settings import ExportSettingsProvider
from vsms.providers.hosted import HostedServiceProvider
from vsms.providers.image_service import ImageManagementServiceProvider
from vsms.providers.jobs import AffectedJobElementProvider, JobProvider
from vsms.providers.management_service import ManagementServiceProvider
from vsms.providers.pools import (
    CapabilitiesProvider,
    PoolAssociationProvider,
    PoolProvider,
    ProcessorPoolProvider,
)
from vsms.providers.settings_data import SettingDataProvider, SettingsAssociationProvider
from vsms.providers.snapshots import SnapshotTreeProvider
from vsms.providers.switch_service import SwitchServiceProvider
from vsms.providers.switches import SwitchAssociationProvider, SwitchProvider
from vsms.providers.vsms_service_settings import ServiceSettingsProvider

PROVIDERS: tuple[type[ServiceProvider], ...] = (
    ComputerSystemProvider,
    SettingDataProvider,
    SettingsAssociationProvider,
    ManagementServiceProvider,
    ExportSettingsProvider,
    JobProvider,
    AffectedJobElementProvider,
    ImageManagementServiceProvider,
    PoolProvider, ProcessorPoolProvider, CapabilitiesProvider, PoolAssociationProvider,

    LogicalDeviceProvider, DeviceAssociationProvider,
    SwitchServiceProvider, SwitchProvider, SwitchAssociationProvider,

    SnapshotTreeProvider,

    ComponentProvider, ShutdownComponentProvider,
    ServiceSettingsProvider,
    HostedServiceProvider,
)


def providers(ctx: ServiceContext) -> list[ServiceProvider]:
    return [cls(ctx) for cls in PROVIDERS]
