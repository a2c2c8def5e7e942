"""Provider declarations: checked against the MOF and the authorization table when registered,
and what ``invoke`` does with declared, undeclared and failing methods."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
import pywbem

from vsms.auth.policy import Role
from vsms.cim import names
from vsms.cim.enums import ReturnCode
from vsms.cim.schema import load_schema
from vsms.errors import InvalidParameter
from vsms.providers.base import CIMTarget, MethodDecl, Provider, method
from vsms.providers.build import PROVIDERS
from vsms.providers.common import ERROR_DESCRIPTION, Params, Result, as_str
from vsms.providers.registry import Registry

NS = names.NAMESPACE
_A, _O = Role.ADMINISTRATOR, Role.OPERATOR
SERVICE = pywbem.CIMInstanceName(names.IMAGE_SERVICE, keybindings={"Name": "vhdsvc"},
                                 namespace=NS)


Schema = tuple[list[pywbem.CIMClass], list[pywbem.CIMQualifierDeclaration]]


@pytest.fixture(scope="module")
def schema() -> Schema:
    compiled = load_schema(NS)
    return compiled.classes, compiled.qualifiers


def registry(schema: Schema, provider: Provider) -> Registry:
    reg = Registry("HOST")
    reg.add_namespace(NS, *schema)
    reg.add_provider(NS, provider)
    return reg


class ImageService(Provider):
    classnames = (names.IMAGE_SERVICE,)

    def enumerate(self, classname: str) -> Iterable[pywbem.CIMInstance]:
        return [pywbem.CIMInstance(names.IMAGE_SERVICE, {"Name": "vhdsvc"}, path=SERVICE)]

    @method("GetVirtualHardDiskInfo", _O, params=("Path",))
    def info(self, target: CIMTarget, params: Params) -> Result:
        path = as_str(params, "Path")
        if path == "bad":
            raise InvalidParameter("Path bad is not a disk: pass the path of a .vhd file")
        return 0, {"Info": f"info of {path}"}


def test_declared_methods_run_and_the_others_answer_not_supported(schema: Schema) -> None:
    reg = registry(schema, ImageService())
    assert reg.invoke_method(NS, SERVICE, "getvirtualharddiskinfo", {"path": "/d.vhd"}) == (
        0, {"Info": "info of /d.vhd"})
    rv, out = reg.invoke_method(NS, SERVICE, "GetVirtualHardDiskInfo", {"Path": "bad"})
    assert rv == ReturnCode.INVALID_PARAMETER
    assert "pass the path of a .vhd file" in out[ERROR_DESCRIPTION]
    rv, out = reg.invoke_method(NS, SERVICE, "Mount", {"Path": "/d.vhd"})
    assert rv == ReturnCode.NOT_SUPPORTED and "Mount" in out[ERROR_DESCRIPTION]


def test_a_provider_without_methods_is_not_a_method_provider(schema: Schema) -> None:
    class Instances(Provider):
        classnames = (names.IMAGE_SERVICE,)
        enumerate = ImageService.enumerate

    assert Instances.methods == {} and ImageService.methods.keys() == {"getvirtualharddiskinfo"}
    reg = registry(schema, Instances())
    assert reg.get_instance(NS, SERVICE)["Name"] == "vhdsvc"
    with pytest.raises(pywbem.CIMError) as info:
        reg.invoke_method(NS, SERVICE, "Mount", {})
    assert info.value.status_code == pywbem.CIM_ERR_NOT_SUPPORTED


def declared(name: str, role: Role, **kw: object) -> MethodDecl[Provider]:
    def run(provider: Provider, target: CIMTarget, params: Params) -> Result:
        return 0, {}
    return method(name, role, **kw)(run)  # type: ignore[arg-type]


@pytest.mark.parametrize("declaration,problem", [
    (declared("GetVirtualHardDiskInfo", _A, params=("Path",)),
     "declared for the administrator role but vsms.auth.policy gives it to the operator"),
    (declared("GetVirtualHardDiskInfo", _O, params=("Pth",)), "Pth is not an IN parameter"),
    (declared("GetVirtualHardDiskInfo", _O, params=("Info",)), "Info is not an IN parameter"),
    (declared("Frobnicate", _A), "Frobnicate is declared by a provider but not in the MOF"),
    (declared("RequestStateChange", _A, job=True, params=("RequestedState",)),
     None),  # CIM_Service.RequestStateChange has an OUT Job: fine
    (declared("GetVirtualHardDiskInfo", _O, job=True), None),
    (declared("Unmount", _A, job=True), "declared as a job but the MOF has no OUT parameter Job"),
])
def test_declarations_are_checked_against_the_mof_and_the_policy(
        schema: Schema, declaration: MethodDecl[Provider], problem: str | None) -> None:
    provider = type("Declared", (Provider,), {"classnames": (names.IMAGE_SERVICE,),
                                              "declared": declaration})()
    assert list(provider.methods.values()) == [declaration]
    if problem is None:
        registry(schema, provider)
        return
    with pytest.raises(ValueError, match=problem):
        registry(schema, provider)


def test_every_served_method_is_declared_once_with_the_policy_role(schema: Schema) -> None:
    from vsms.auth.policy import method_role
    classes = {c.classname.lower(): c for c in schema[0]}
    seen = set()
    for cls in PROVIDERS:
        for cn in cls.classnames:
            for decl in cls.methods.values():
                assert decl.name in classes[cn.lower()].methods, (cn, decl.name)
                assert method_role(cn, decl.name) == decl.role, (cn, decl.name)
                seen.add((cn, decl.name))
    assert (names.VSMS, "DefineVirtualSystem") in seen
    assert (names.COMPUTER_SYSTEM, "RequestStateChange") in seen
    assert (names.CONCRETE_JOB, "GetErrorEx") in seen
