"""Each role over CIM-XML against the test model: reads for everyone, CIM_ERR_ACCESS_DENIED for
denied intrinsic operations, ReturnValue 32769 for denied methods (never reaching a provider)."""

from __future__ import annotations

import pytest
import pywbem

from tests.auth.conftest import Secured
from tests.wbem.model import NS, SERVICE_PATH, ServiceProvider
from vsms.providers.registry import Registry

VM1 = pywbem.CIMInstanceName("TST_VirtualSystem", {"CreationClassName": "TST_VirtualSystem",
                                                   "Name": "vm1"}, namespace=NS)


@pytest.mark.parametrize("user", ["reader", "oper", "admin"])
def test_every_role_reads(secured: Secured, user: str) -> None:
    conn = secured.connect(user)
    assert len(conn.EnumerateInstances("TST_VirtualSystem")) == 3
    assert conn.GetInstance(VM1)["Name"] == "vm1"
    assert conn.AssociatorNames(VM1)
    assert conn.GetClass("TST_Service").classname == "TST_Service"
    assert len(conn.ExecQuery("WQL", "SELECT * FROM TST_VirtualSystem WHERE Name = 'vm2'")) == 1
    result = conn.OpenEnumerateInstances("TST_VirtualSystem", MaxObjectCount=1)
    assert not result.eos
    conn.CloseEnumeration(result.context)
    assert conn.EnumerateQualifiers()


@pytest.mark.parametrize("user", ["reader", "oper"])
def test_denied_intrinsic_operations_get_access_denied(secured: Secured, user: str) -> None:
    conn = secured.connect(user)
    inst = conn.GetInstance(VM1)
    for call in (lambda: conn.ModifyInstance(inst), lambda: conn.DeleteInstance(VM1),
                 lambda: conn.CreateInstance(inst), lambda: conn.DeleteClass("TST_Job")):
        with pytest.raises(pywbem.CIMError) as info:
            call()
        assert info.value.status_code == pywbem.CIM_ERR_ACCESS_DENIED
        assert "administrator role" in info.value.status_description


def test_administrator_gets_past_authorization(secured: Secured) -> None:
    conn = secured.connect("admin")
    with pytest.raises(pywbem.CIMError) as info:
        conn.DeleteInstance(VM1)
    assert info.value.status_code == pywbem.CIM_ERR_NOT_SUPPORTED  # not ACCESS_DENIED


@pytest.mark.parametrize("user", ["reader", "oper"])
def test_denied_methods_return_32769_without_a_provider_call(
        secured: Secured, model: tuple[Registry, ServiceProvider], user: str) -> None:
    conn = secured.connect(user)
    rv, out = conn.InvokeMethod("DestroySystem", SERVICE_PATH, AffectedSystem=VM1)
    assert (rv, dict(out)) == (32769, {})
    rv, _ = conn.InvokeMethod("RequestStateChange", VM1, RequestedState=pywbem.Uint16(3))
    assert rv == 32769
    rv, _ = conn.InvokeMethod("Version", pywbem.CIMClassName("TST_Service", namespace=NS))
    assert rv == 32769
    assert model[1].calls == []
    assert len(conn.EnumerateInstances("TST_VirtualSystem")) == 3


def test_administrator_methods_reach_the_provider(
        secured: Secured, model: tuple[Registry, ServiceProvider]) -> None:
    conn = secured.connect("admin")
    rv, out = conn.InvokeMethod("Version", pywbem.CIMClassName("TST_Service", namespace=NS))
    assert (rv, out["Text"]) == (0, "1.2.3")
    rv, out = conn.InvokeMethod("DestroySystem", SERVICE_PATH, AffectedSystem=VM1)
    assert rv == 4096 and out["Job"].classname == "TST_Job"
    assert [c[0] for c in model[1].calls] == ["Version", "DestroySystem"]
