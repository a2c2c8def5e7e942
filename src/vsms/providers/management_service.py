"""Msvm_VirtualSystemManagementService: the singleton "vmms" and its methods.

Life-cycle methods come from ``vsms_lifecycle``, export/import from ``vsms_exportimport``,
summary information and thumbnails from ``vsms_summary``, snapshots from ``vsms_snapshots``, the
key-value items from ``vsms_kvp``, the service settings and FormatError from
``vsms_service_settings``; every
other method the class declares returns 32770 (Not supported) and does nothing.
"""

from __future__ import annotations

from vsms.cim import names
from vsms.providers.base import SingletonService
from vsms.providers.vsms_exportimport import ExportImportMethods
from vsms.providers.vsms_kvp import KvpMethods
from vsms.providers.vsms_lifecycle import LifecycleMethods
from vsms.providers.vsms_service_settings import ServiceSettingsMethods
from vsms.providers.vsms_snapshots import SnapshotMethods
from vsms.providers.vsms_summary import SummaryMethods


class ManagementServiceProvider(LifecycleMethods, ExportImportMethods, SummaryMethods,
                                SnapshotMethods, KvpMethods, ServiceSettingsMethods,
                                SingletonService):
    classnames = (names.VSMS,)
    service_name = names.VSMS_NAME
    caption = "Virtual System Management Service"
    description = "Service for creating, manipulating, and managing virtual systems"
