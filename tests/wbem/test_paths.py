"""The one object-path comparison (``vsms.providers.common.same_path``) and its users."""

from __future__ import annotations

import pytest
import pywbem

from vsms.providers.common import same_path, same_value

VM = pywbem.CIMInstanceName("Msvm_ComputerSystem", keybindings={
    "CreationClassName": "Msvm_ComputerSystem", "Name": "6B0C3F3E-1D1A-4E0F-9E47-0A1B2C3D4E5F"},
    namespace="root/virtualization", host="hostA")


def path(classname: str, **keys: object) -> pywbem.CIMInstanceName:
    return pywbem.CIMInstanceName(classname, keybindings=keys)


@pytest.mark.parametrize("other", [
    path("msvm_computersystem", creationclassname="Msvm_ComputerSystem",
         NAME="6b0c3f3e-1d1a-4e0f-9e47-0a1b2c3d4e5f"),  # case of class, key names and values
    pywbem.CIMInstanceName("Msvm_ComputerSystem", keybindings=dict(VM.keybindings),
                           namespace="other", host="hostB"),  # host and namespace ignored
])
def test_the_same_instance(other: pywbem.CIMInstanceName) -> None:
    assert same_path(VM, other) and same_path(other, VM)


@pytest.mark.parametrize("other", [
    path("Msvm_VirtualSystemSettingData", CreationClassName="Msvm_ComputerSystem",
         Name=VM.keybindings["Name"]),  # another class
    path("Msvm_ComputerSystem", CreationClassName="Msvm_ComputerSystem"),  # a key missing
    path("Msvm_ComputerSystem", CreationClassName="Msvm_ComputerSystem", Name="HOST"),
    path("Msvm_ComputerSystem", CreationClassName="Msvm_ComputerSystem",
         Name=VM.keybindings["Name"], Extra="x"),  # a key too many
])
def test_other_instances(other: pywbem.CIMInstanceName) -> None:
    assert not same_path(VM, other) and not same_path(other, VM)


def test_a_path_with_only_some_keys_matches_when_partial() -> None:
    some = path("MSVM_COMPUTERSYSTEM", name=VM.keybindings["Name"].lower())
    assert same_path(VM, some, partial=True)
    assert not same_path(VM, some)
    assert not same_path(VM, path("Msvm_ComputerSystem", Name="other"), partial=True)


def test_references_compare_as_paths_and_numbers_as_numbers() -> None:
    assoc = path("Msvm_AffectedJobElement", AffectedElement=VM,
                 AffectingElement=path("Msvm_ConcreteJob", InstanceID="J1"))
    again = path("Msvm_AffectedJobElement", affectingelement=path("msvm_concretejob",
                                                                  instanceid="j1"),
                 affectedelement=pywbem.CIMInstanceName(
                     "Msvm_ComputerSystem", keybindings=dict(VM.keybindings)))
    assert same_path(assoc, again)
    assert same_value(VM, VM.to_wbem_uri())  # a reference given as a WBEM URI
    assert not same_value(VM, "not a path")
    assert same_value(pywbem.Uint16(2), 2) and not same_value(2, 3)
    assert same_value(True, "TRUE") and not same_value(1, True)
