"""The list of providers serving root/virtualization, each built on the ServiceContext."""

from __future__ import annotations

from typing import Any

from vsms.providers.computer_system import ComputerSystemProvider
from vsms.providers.context import ServiceContext
from vsms.providers.export_settings import ExportSettingsProvider
from vsms.providers.image_service import ImageManagementServiceProvider
from vsms.providers.jobs import AffectedJobElementProvider, JobProvider
from vsms.providers.management_service import ManagementServiceProvider
from vsms.providers.settings_data import SettingDataProvider, SettingsAssociationProvider


def providers(ctx: ServiceContext) -> list[Any]:
    return [
        ComputerSystemProvider(ctx),
        SettingDataProvider(ctx),
        SettingsAssociationProvider(ctx),
        ManagementServiceProvider(ctx),
        ExportSettingsProvider(ctx),
        JobProvider(ctx),
        AffectedJobElementProvider(ctx),
        ImageManagementServiceProvider(ctx),
    ]
