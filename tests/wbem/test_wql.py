"""The WQL subset, run against the test model's registry."""

from __future__ import annotations

import pytest
import pywbem

from tests.wbem.model import NS, build_registry
from vsms.providers.registry import Registry
from vsms.wbem import query, wql


@pytest.fixture
def reg() -> Registry:
    return build_registry(systems=4)[0]


def names(rows: list[query.Row]) -> list[str]:
    return sorted(str(i["Name"]) for i, _ in rows)


@pytest.mark.parametrize("text, expected", [
    ("SELECT * FROM TST_System", ["host1", "vm0", "vm1", "vm2", "vm3"]),
    ("select * from tst_virtualsystem", ["vm0", "vm1", "vm2", "vm3"]),
    ("SELECT * FROM TST_System WHERE ElementName = 'VM 1'", ["vm1"]),
    ('SELECT * FROM TST_System WHERE ElementName = "vm 1"', ["vm1"]),
    ("SELECT * FROM TST_System WHERE 'vm 2' = ElementName", ["vm2"]),
    ("SELECT * FROM TST_System WHERE EnabledState = 3", ["vm1", "vm3"]),
    ("SELECT * FROM TST_System WHERE EnabledState <> 3 AND MemoryMB > 256", ["host1", "vm2"]),
    ("SELECT * FROM TST_System WHERE MemoryMB >= 768 OR Name = 'vm0'", ["vm0", "vm2", "vm3"]),
    ("SELECT * FROM TST_System WHERE NOT (EnabledState = 2 OR Name = 'vm1')", ["vm3"]),
    ("SELECT * FROM TST_System WHERE MemoryMB < '300'", ["vm0"]),
    ("SELECT * FROM TST_System WHERE Enabled = TRUE AND Ratio <= 0.5", [
        "host1", "vm0", "vm1", "vm2", "vm3"]),
    ("SELECT * FROM TST_System WHERE Enabled = FALSE", []),
    ("SELECT * FROM TST_System WHERE Name LIKE 'VM%'", ["vm0", "vm1", "vm2", "vm3"]),
    ("SELECT * FROM TST_System WHERE Name LIKE 'vm[02]'", ["vm0", "vm2"]),
    ("SELECT * FROM TST_System WHERE Name LIKE '_m_'", ["vm0", "vm1", "vm2", "vm3"]),
    ("SELECT * FROM TST_VirtualSystem WHERE Caption IS NULL AND Notes IS NOT NULL", [
        "vm0", "vm1", "vm2", "vm3"]),
    ("SELECT * FROM TST_System WHERE Caption = NULL AND Name = 'host1'", ["host1"]),
    ("SELECT * FROM TST_System WHERE Tags = 'b'", ["host1", "vm0", "vm1", "vm2", "vm3"]),
    ("SELECT * FROM TST_System WHERE __CLASS = 'TST_System'", ["host1"]),
    ("SELECT * FROM TST_System WHERE Name != 'host1' AND Name <> 'vm0'", ["vm1", "vm2", "vm3"]),
])
def test_select(reg: Registry, text: str, expected: list[str]) -> None:
    assert names(query.run(reg, NS, text)) == expected


def test_select_properties(reg: Registry) -> None:
    rows = query.run(reg, NS, "SELECT Name, ElementName FROM TST_VirtualSystem WHERE Name='vm0'")
    assert [keep for _, keep in rows] == [{"name", "elementname"}]


@pytest.mark.parametrize("text, what", [
    ("", "empty"),
    ("DELETE FROM TST_System", "starts with SELECT"),
    ("SELECT * TST_System", "expected FROM"),
    ("SELECT * FROM TST_Nothing", "does not exist"),
    ("SELECT Bogus FROM TST_System", "no property Bogus"),
    ("SELECT * FROM TST_System WHERE Bogus = 1", "no property Bogus"),
    ("SELECT * FROM TST_System WHERE Name = ", "ends where"),
    ("SELECT * FROM TST_System WHERE Name = 'x' extra", "unexpected"),
    ("SELECT * FROM TST_System WHERE 1 = 2", "one property"),
    ("SELECT * FROM TST_System WHERE Name = 'unterminated", "unexpected"),
    ("ASSOCIATORS OF {TST_System.Name='x'} WHERE Bogus = X", "not valid"),
    ("ASSOCIATORS OF TST_System", "object path"),
])
def test_invalid_queries(reg: Registry, text: str, what: str) -> None:
    with pytest.raises(pywbem.CIMError) as info:
        query.run(reg, NS, text)
    assert info.value.status_code == pywbem.CIM_ERR_INVALID_QUERY
    assert what in info.value.status_description


def test_language_check() -> None:
    query.check_language("wql")
    with pytest.raises(pywbem.CIMError) as info:
        query.check_language("DMTF:CQL")
    assert info.value.status_code == pywbem.CIM_ERR_QUERY_LANGUAGE_NOT_SUPPORTED


@pytest.mark.parametrize("path", [
    'TST_VirtualSystem.CreationClassName="TST_VirtualSystem",Name="vm1"',
    "TST_VirtualSystem.CreationClassName='TST_VirtualSystem',Name='vm1'",
    r'\\TESTHOST\root\test:TST_VirtualSystem.CreationClassName="TST_VirtualSystem",Name="vm1"',
    '//testhost/root/test:TST_VirtualSystem.CreationClassName="TST_VirtualSystem",Name="vm1"',
    "TST_VirtualSystem.Name='vm1'",  # WMI clients may give only some keys
])
def test_associators_of(reg: Registry, path: str) -> None:
    rows = query.run(reg, NS, f"ASSOCIATORS OF {{{path}}} WHERE ResultClass = TST_SettingData")
    assert [str(i["InstanceID"]) for i, _ in rows] == ["sd-1"]
    rows = query.run(reg, NS, f"REFERENCES OF {{{path}}}")
    assert [i.classname for i, _ in rows] == ["TST_SystemSettings"]


def test_associators_of_keywords(reg: Registry) -> None:
    p = "{TST_System.CreationClassName='TST_System',Name='host1'}"
    rows = query.run(reg, NS, f"ASSOCIATORS OF {p} WHERE AssocClass=TST_HostedService "
                              f"ResultRole = Dependent Role = Antecedent KeysOnly")
    assert [(i.classname, keep) for i, keep in rows] == [("TST_Service", {
        "systemcreationclassname", "systemname", "creationclassname", "name"})]
    assert query.run(reg, NS, f"ASSOCIATORS OF {p} WHERE ResultClass = TST_SettingData") == []
    assert len(query.run(reg, NS, f"ASSOCIATORS OF {p} WHERE RequiredAssocQualifier = "
                                  f"Association")) == 1
    with pytest.raises(pywbem.CIMError) as info:
        query.run(reg, NS, "ASSOCIATORS OF {TST_System.Name='nope'}")
    assert info.value.status_code == pywbem.CIM_ERR_NOT_FOUND
    with pytest.raises(pywbem.CIMError) as info:
        query.run(reg, NS, f"ASSOCIATORS OF {p} WHERE ClassDefsOnly")
    assert info.value.status_code == pywbem.CIM_ERR_NOT_SUPPORTED


def test_parse_object_path_escapes() -> None:
    path = wql.parse_object_path(r'C.Path="C:\\dir\\\"q\"",N=5,B=TRUE')
    assert dict(path.keybindings) == {"Path": 'C:\\dir\\"q"', "N": 5, "B": True}


# ---------------------------------------------------------------------- bounds (issue 9, 8)
def _refused(reg: Registry, text: str) -> str:
    with pytest.raises(pywbem.CIMError) as exc:
        query.run(reg, NS, text)
    assert exc.value.status_code == pywbem.CIM_ERR_INVALID_QUERY
    return str(exc.value.status_description)


def test_query_size_and_depth_are_bounded(reg: Registry) -> None:
    cond = "Name = 'vm1'"
    # the finding: 20,000 ANDs was a RecursionError; now a refusal naming the limit
    huge = "SELECT * FROM TST_System WHERE " + " AND ".join([cond] * 20_001)
    assert f"limit of {wql.MAX_QUERY_CHARS}" in _refused(reg, huge)
    many = "SELECT * FROM TST_System WHERE " + " OR ".join(["A=1"] * (wql.MAX_OPERATORS + 2))
    assert len(many) <= wql.MAX_QUERY_CHARS
    assert f"more than {wql.MAX_OPERATORS} AND/OR/NOT" in _refused(reg, many)
    deep = ("SELECT * FROM TST_System WHERE " + "(" * (wql.MAX_NESTING + 1) + cond
            + ")" * (wql.MAX_NESTING + 1))
    assert f"nested more than {wql.MAX_NESTING} deep" in _refused(reg, deep)
    nots = "SELECT * FROM TST_System WHERE " + "NOT " * (wql.MAX_NESTING + 1) + cond
    assert f"nested more than {wql.MAX_NESTING} deep" in _refused(reg, nots)


def test_queries_at_the_limits_still_run(reg: Registry) -> None:
    # MAX_OPERATORS ORs of the same condition: flat, evaluated without deep recursion
    wide = "SELECT * FROM TST_System WHERE " + " OR ".join(
        ["Name = 'vm1'"] * wql.MAX_OPERATORS + ["Name = 'vm2'"])
    assert len(wide) <= wql.MAX_QUERY_CHARS
    assert names(query.run(reg, NS, wide)) == ["vm1", "vm2"]
    deep = ("SELECT * FROM TST_System WHERE " + "(" * wql.MAX_NESTING + "Name = 'vm3'"
            + ")" * wql.MAX_NESTING)
    assert names(query.run(reg, NS, deep)) == ["vm3"]
    mixed = ("SELECT * FROM TST_System WHERE NOT (Name = 'vm0' OR Name = 'vm1') AND "
             "Name LIKE 'vm%' AND EnabledState <> 3")
    assert names(query.run(reg, NS, mixed)) == ["vm2"]
