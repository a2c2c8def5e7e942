"""CIM class names, the namespace and fixed key values we serve."""

from __future__ import annotations

NAMESPACE = "root/virtualization"
INTEROP_NAMESPACE = "interop"

COMPUTER_SYSTEM = "Msvm_ComputerSystem"
VSSD = "Msvm_VirtualSystemSettingData"
VSGSD = "Msvm_VirtualSystemGlobalSettingData"
RASD = "Msvm_ResourceAllocationSettingData"
MEMORY_SD = "Msvm_MemorySettingData"
PROCESSOR_SD = "Msvm_ProcessorSettingData"
SYNTHETIC_NIC_SD = "Msvm_SyntheticEthernetPortSettingData"
EMULATED_NIC_SD = "Msvm_EmulatedEthernetPortSettingData"
CONCRETE_JOB = "Msvm_ConcreteJob"
STORAGE_JOB = "Msvm_StorageJob"
VSMS = "Msvm_VirtualSystemManagementService"
IMAGE_SERVICE = "Msvm_ImageManagementService"
VHD_INFO = "Msvm_VirtualHardDiskInfo"
EXPORT_SD = "Msvm_VirtualSystemExportSettingData"
IMPORT_SD = "Msvm_VirtualSystemImportSettingData"
MSVM_ERROR = "Msvm_Error"  # embedded only (GetErrorEx, FormatError)
CIM_ERROR = "CIM_Error"  # embedded only (GetError)

# associations
AFFECTED_JOB_ELEMENT = "Msvm_AffectedJobElement"
SETTINGS_DEFINE_STATE = "Msvm_SettingsDefineState"
VSSD_COMPONENT = "Msvm_VirtualSystemSettingDataComponent"
SYSTEM_EXPORT_SD = "Msvm_SystemExportSettingData"
ELEMENT_SETTING_DATA = "Msvm_ElementSettingData"
HOSTED_SERVICE = "Msvm_HostedService"

# fixed keys of the singleton services
VSMS_NAME = "vmms"
IMAGE_SERVICE_NAME = "vhdsvc"
SUMMARY_INFORMATION = "Msvm_SummaryInformation"
