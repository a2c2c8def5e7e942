"""The compiled root/virtualization schema: classes, keys, associations, method signatures."""

from __future__ import annotations

from pathlib import Path

import pytest
import pywbem

from vsms.cim import names, schema
from vsms.errors import InvalidParameter, OperationFailed
from vsms.providers.registry import Registry

MSVM_CLASSES = [v for k, v in vars(names).items()
                if k.isupper() and isinstance(v, str) and v.startswith("Msvm_")]
ASSOCIATIONS = {  # class -> (aggregation?, {reference: referenced class})
    names.AFFECTED_JOB_ELEMENT: (True, {"AffectingElement": names.CONCRETE_JOB,
                                        "AffectedElement": "CIM_ManagedElement"}),
    names.SETTINGS_DEFINE_STATE: (False, {"ManagedElement": names.COMPUTER_SYSTEM,
                                          "SettingData": names.VSSD}),
    names.VSSD_COMPONENT: (True, {"GroupComponent": "CIM_VirtualSystemSettingData",
                                  "PartComponent": "CIM_ResourceAllocationSettingData"}),
    names.SYSTEM_EXPORT_SD: (True, {"ManagedElement": names.COMPUTER_SYSTEM,
                                    "SettingData": names.EXPORT_SD}),
    names.ELEMENT_SETTING_DATA: (True, {"ManagedElement": "CIM_ManagedElement",
                                        "SettingData": "CIM_SettingData"}),
    names.HOSTED_SERVICE: (False, {"Antecedent": "CIM_System", "Dependent": "CIM_Service"}),
}
KEYS = {
    names.COMPUTER_SYSTEM: {"CreationClassName", "Name"},
    names.VSMS: {"CreationClassName", "Name", "SystemCreationClassName", "SystemName"},
    names.IMAGE_SERVICE: {"CreationClassName", "Name", "SystemCreationClassName", "SystemName"},
    names.CONCRETE_JOB: {"InstanceID"}, names.STORAGE_JOB: {"InstanceID"},
    names.VSSD: {"InstanceID"}, names.VSGSD: {"InstanceID"}, names.RASD: {"InstanceID"},
    names.MEMORY_SD: {"InstanceID"}, names.PROCESSOR_SD: {"InstanceID"},
    names.SYNTHETIC_NIC_SD: {"InstanceID"}, names.EMULATED_NIC_SD: {"InstanceID"},
    names.EXPORT_SD: {"InstanceID"}, names.IMPORT_SD: {"InstanceID"}, names.VHD_INFO: set(),
}

# (name, direction, CIM type, array, reference class, EmbeddedInstance class)
Sig = list[tuple[str, str, str, bool, str | None, str | None]]
JOB = ("Job", "out", "reference", False, "CIM_ConcreteJob", None)
SIGNATURES: dict[str, Sig] = {
    "ExportVirtualSystem": [
        ("ComputerSystem", "in", "reference", False, "CIM_ComputerSystem", None),
        ("CopyVmState", "in", "boolean", False, None, None),
        ("ExportDirectory", "in", "string", False, None, None), JOB],
    "ExportVirtualSystemEx": [
        ("ComputerSystem", "in", "reference", False, "CIM_ComputerSystem", None),
        ("ExportDirectory", "in", "string", False, None, None),
        ("ExportSettingData", "in", "string", False, None, names.EXPORT_SD), JOB],
    "ImportVirtualSystem": [
        ("ImportDirectory", "in", "string", False, None, None),
        ("GenerateNewID", "in", "boolean", False, None, None), JOB],
    "ImportVirtualSystemEx": [
        ("ImportDirectory", "in", "string", False, None, None),
        ("ImportSettingData", "in", "string", False, None, names.IMPORT_SD), JOB],
    "GetVirtualSystemImportSettingData": [
        ("ImportDirectory", "in", "string", False, None, None),
        ("ImportSettingData", "out", "string", False, None, names.IMPORT_SD), JOB],
    "DefineVirtualSystem": [
        ("SystemSettingData", "in", "string", False, None, names.VSGSD),
        ("ResourceSettingData", "in", "string", True, None, "CIM_ResourceAllocationSettingData"),
        ("SourceSetting", "in", "reference", False, "CIM_VirtualSystemSettingData", None),
        ("DefinedSystem", "out", "reference", False, "CIM_ComputerSystem", None), JOB],
    "ModifyVirtualSystem": [
        ("ComputerSystem", "in", "reference", False, "CIM_ComputerSystem", None),
        ("SystemSettingData", "in", "string", False, None, "CIM_VirtualSystemSettingData"),
        ("ModifiedSettingData", "out", "reference", False, "CIM_VirtualSystemSettingData",
         None), JOB],
    "AddVirtualSystemResources": [
        ("TargetSystem", "in", "reference", False, "CIM_ComputerSystem", None),
        ("ResourceSettingData", "in", "string", True, None, "CIM_ResourceAllocationSettingData"),
        ("NewResources", "out", "reference", True, "CIM_ResourceAllocationSettingData", None),
        JOB],
    "ModifyVirtualSystemResources": [
        ("ComputerSystem", "in", "reference", False, "CIM_ComputerSystem", None),
        ("ResourceSettingData", "in", "string", True, None, "CIM_ResourceAllocationSettingData"),
        JOB],
    "RemoveVirtualSystemResources": [
        ("TargetSystem", "in", "reference", False, "CIM_ComputerSystem", None),
        ("ResourceSettingData", "in", "reference", True, "CIM_ResourceAllocationSettingData",
         None), JOB],
    "DestroyVirtualSystem": [
        ("ComputerSystem", "in", "reference", False, "CIM_ComputerSystem", None), JOB],
}


def direction(p: pywbem.CIMParameter) -> str:
    q = {k.lower(): v.value for k, v in p.qualifiers.items()}
    assert "in" in q or "out" in q, f"parameter {p.name} has neither IN nor OUT"
    if q.get("out") and q.get("in") is False:
        return "out"
    if q.get("out") and q.get("in"):  # only where a page has [in, out] (CreateGoalSettings)
        return "in, out"
    assert not q.get("out"), f"parameter {p.name} is OUT without saying IN or IN(false)"
    assert q.get("in") is not False, f"parameter {p.name} is neither IN nor OUT"
    return "in"


def signature(meth: pywbem.CIMMethod) -> Sig:
    out: Sig = []
    for p in meth.parameters.values():
        ei = p.qualifiers.get("EmbeddedInstance")
        out.append((p.name, direction(p), p.type, p.is_array, p.reference_class,
                    ei.value if ei is not None else None))
    return out


def elements(cls: pywbem.CIMClass):  # every property, method and parameter with a label
    for p in cls.properties.values():
        yield f"{cls.classname}.{p.name}", p
    for m in cls.methods.values():
        yield f"{cls.classname}.{m.name}()", m
        for p in m.parameters.values():
            yield f"{cls.classname}.{m.name}({p.name})", p


def test_every_named_class_is_served(classes: dict[str, pywbem.CIMClass]) -> None:
    assert len(MSVM_CLASSES) >= 21
    missing = [c for c in MSVM_CLASSES if c.lower() not in classes]
    assert not missing
    for cls in classes.values():  # every superclass is there too
        assert cls.superclass is None or cls.superclass.lower() in classes, cls.classname


@pytest.mark.parametrize("classname", sorted(KEYS))
def test_keys(classes: dict[str, pywbem.CIMClass], classname: str) -> None:
    cls = classes[classname.lower()]
    keys = {n for n, p in cls.properties.items()
            if p.qualifiers.get("Key") is not None and p.qualifiers["Key"].value}
    assert keys == KEYS[classname]


@pytest.mark.parametrize("classname", sorted(ASSOCIATIONS))
def test_associations(classes: dict[str, pywbem.CIMClass], classname: str) -> None:
    aggregation, refs = ASSOCIATIONS[classname]
    cls = classes[classname.lower()]
    assert cls.qualifiers["Association"].value is True
    assert ("Aggregation" in cls.qualifiers) is aggregation
    got = {n: p.reference_class for n, p in cls.properties.items() if p.type == "reference"}
    assert got == refs
    for name in refs:
        assert cls.properties[name].qualifiers["Key"].value is True


@pytest.mark.parametrize("method", sorted(SIGNATURES))
def test_documented_method_signatures(classes: dict[str, pywbem.CIMClass], method: str) -> None:
    meth = classes[names.VSMS.lower()].methods[method]
    assert meth.return_type == "uint32"
    assert signature(meth) == SIGNATURES[method]


def test_vhd_info_is_a_plain_string(classes: dict[str, pywbem.CIMClass]) -> None:
    meth = classes[names.IMAGE_SERVICE.lower()].methods["GetVirtualHardDiskInfo"]
    assert signature(meth) == [("Path", "in", "string", False, None, None),
                               ("Info", "out", "string", False, None, None), JOB]
    assert "EmbeddedObject" not in meth.parameters["Info"].qualifiers


def test_state_change_signatures(classes: dict[str, pywbem.CIMClass]) -> None:
    cs = classes[names.COMPUTER_SYSTEM.lower()].methods["RequestStateChange"]
    assert signature(cs) == [("RequestedState", "in", "uint16", False, None, None), JOB,
                             ("TimeoutPeriod", "in", "datetime", False, None, None)]
    job = classes[names.CONCRETE_JOB.lower()].methods
    assert signature(job["RequestStateChange"]) == [
        ("RequestedState", "in", "uint16", False, None, None),
        ("TimeoutPeriod", "in", "datetime", False, None, None)]
    assert signature(job["GetError"]) == [("Error", "out", "string", False, None, "CIM_Error")]
    assert signature(job["KillJob"]) == [("DeleteOnKill", "in", "boolean", False, None, None)]


def test_value_maps_are_well_formed(classes: dict[str, pywbem.CIMClass]) -> None:
    for cls in classes.values():
        for label, el in elements(cls):
            vm, vs = el.qualifiers.get("ValueMap"), el.qualifiers.get("Values")
            assert (vm is None) == (vs is None), f"{label}: ValueMap without Values or back"
            if vm is None:
                continue
            assert len(vm.value) == len(vs.value), f"{label}: ValueMap and Values differ"
            assert len(set(vm.value)) == len(vm.value), f"{label}: repeated ValueMap entry"
            for entry in vm.value:
                for part in entry.split(".."):
                    if part:
                        int(part, 0)  # raises for a malformed entry


def test_every_method_documents_its_return_values(classes: dict[str, pywbem.CIMClass]) -> None:
    for cls in classes.values():
        for name, meth in cls.methods.items():
            assert "ValueMap" in meth.qualifiers, f"{cls.classname}.{name}"
            for p in meth.parameters.values():
                direction(p)


def test_embedded_instance_qualifiers_name_served_classes(
        classes: dict[str, pywbem.CIMClass]) -> None:
    for cls in classes.values():
        for label, el in elements(cls):
            q = el.qualifiers.get("EmbeddedInstance")
            if q is not None:
                assert q.value.lower() in classes, label
                assert el.type == "string", label


def test_inherited_members_are_resolved(classes: dict[str, pywbem.CIMClass]) -> None:
    vsms = classes[names.VSMS.lower()]
    assert {"RequestStateChange", "StartService", "StopService",
            "CloneVirtualSystem"} <= set(vsms.methods)
    cs = classes[names.COMPUTER_SYSTEM.lower()]
    assert cs.properties["ElementName"].propagated is True
    assert cs.properties["ElementName"].class_origin == "CIM_ManagedElement"
    assert cs.properties["ProcessID"].class_origin == names.COMPUTER_SYSTEM
    job = classes[names.CONCRETE_JOB.lower()]
    assert job.properties["TimeBeforeRemoval"].value == \
        pywbem.CIMDateTime("00000000000500.000000:000")


def test_registry_accepts_the_schema() -> None:
    reg = Registry("testhost")
    reg.add_namespace(names.NAMESPACE, schema.load_classes())
    subs = {c.classname for c in reg.enumerate_classes(names.NAMESPACE, "CIM_SettingData", True)}
    assert {names.VSSD, names.VSGSD, names.RASD, names.MEMORY_SD, names.EXPORT_SD,
            names.IMPORT_SD} <= subs


def test_each_call_returns_fresh_objects() -> None:
    first = schema.load_schema()
    assert first.namespace == names.NAMESPACE
    assert {q.name.lower() for q in first.qualifiers} >= {"key", "valuemap", "values", "in",
                                                          "out", "embeddedinstance"}
    second = schema.load_classes()
    assert second == first.classes
    # change everything a caller could reach in the first copy, down to qualifier values
    for cls in first.classes:
        for item in (cls, *cls.properties.values(), *cls.methods.values(),
                     *(p for m in cls.methods.values() for p in m.parameters.values())):
            for q in item.qualifiers.values():
                if isinstance(q.value, list) and q.value:
                    q.value.append(q.value[0])
            if isinstance(item, pywbem.CIMProperty) and isinstance(item.value, list):
                item.value.append(item.value[0])
            if isinstance(item, pywbem.CIMParameter):
                item.embedded_object = "object"
    first.classes[0].properties.clear()
    for q in first.qualifiers:
        q.scopes["CLASS"] = not q.scopes.get("CLASS")
    assert second[0].properties, "a later call must not share objects with an earlier one"
    assert schema.load_classes() == second
    assert schema.load_schema().qualifiers != first.qualifiers
    assert list(schema.shared_classes().values()) == second  # the cache is untouched too
    order = [c.classname for c in second]
    for i, cls in enumerate(second):  # superclasses come first
        assert cls.superclass is None or order.index(cls.superclass) < i


def test_shared_classes_are_the_cache_read_only() -> None:
    shared = schema.shared_classes(names.NAMESPACE)
    copies = schema.load_classes(names.NAMESPACE)
    assert list(shared.values()) == copies
    assert all(shared[c.classname.lower()] is not c for c in copies)
    assert schema.shared_classes(names.NAMESPACE) is shared  # no compile, no copy
    with pytest.raises(TypeError):
        shared["msvm_computersystem"] = copies[0]  # type: ignore[index]


def test_served_classes_equal_a_fresh_compile() -> None:
    """GetClass answers of a registry built from the cache equal those of a fresh compile."""
    fresh = schema._compile(schema.mof_file(names.NAMESPACE), names.NAMESPACE)
    cached, uncached = Registry("h"), Registry("h")
    cached.add_namespace(names.NAMESPACE, *_parts(schema.load_schema(names.NAMESPACE)))
    uncached.add_namespace(names.NAMESPACE, *_parts(fresh))
    for c in fresh.classes:
        assert cached.get_class(names.NAMESPACE, c.classname) == \
            uncached.get_class(names.NAMESPACE, c.classname)
    assert cached.qualifier_declarations(names.NAMESPACE) == \
        uncached.qualifier_declarations(names.NAMESPACE)


def _parts(compiled: schema.CompiledSchema
           ) -> tuple[list[pywbem.CIMClass], list[pywbem.CIMQualifierDeclaration]]:
    return compiled.classes, compiled.qualifiers


def test_compiled_once_per_mof_contents(monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    compiles: list[str] = []
    real = schema._compile

    def counted(path: Path, ns: str) -> schema.CompiledSchema:
        compiles.append(ns)
        return real(path, ns)

    monkeypatch.setattr(schema, "_compile", counted)
    monkeypatch.setattr(schema, "mof_dir", lambda: tmp_path)
    (tmp_path / "qualifiers.mof").write_text("Qualifier Key : boolean = false, "
                                             "Scope(property), Flavor(DisableOverride);\n")
    top = tmp_path / "once.mof"
    top.write_text('#pragma include ("qualifiers.mof")\nclass T_A { [Key] string Id; };\n')
    assert [c.classname for c in schema.load_classes("root/once")] == ["T_A"]
    assert [c.classname for c in schema.load_classes("/root/once")] == ["T_A"]
    assert list(schema.shared_classes("root/once")) == ["t_a"]
    assert compiles == ["root/once"]
    # an included file changes: compiled again
    (tmp_path / "qualifiers.mof").write_text("Qualifier Key : boolean = false, "
                                             "Scope(property), Flavor(DisableOverride);\n"
                                             "Qualifier Description : string = null, "
                                             "Scope(any), Flavor(Translatable);\n")
    schema.load_schema("root/once")
    assert len(compiles) == 2
    # the top file gains a class that does not compile: an error, and nothing cached
    top.write_text(top.read_text() + "class T_B : T_Missing { string X; };\n")
    for _ in range(2):
        with pytest.raises(OperationFailed, match="T_Missing"):
            schema.load_schema("root/once")
    assert len(compiles) == 4
    top.write_text(top.read_text().replace("T_Missing", "T_A"))
    assert [c.classname for c in schema.load_classes("root/once")] == ["T_A", "T_B"]
    assert len(compiles) == 5
    assert schema.changed_in_cache() == []


def test_unknown_namespace() -> None:
    with pytest.raises(InvalidParameter, match="no MOF for namespace 'root/nothing'"):
        schema.load_classes("root/nothing")


def test_mof_errors_name_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "qualifiers.mof").write_text("Qualifier Key : boolean = false, "
                                             "Scope(property), Flavor(DisableOverride);\n")
    (tmp_path / "good.mof").write_text('#pragma include ("qualifiers.mof")\n'
                                       "class T_A { [Key] string Id; };\n")
    (tmp_path / "bad.mof").write_text('#pragma include ("qualifiers.mof")\n'
                                      "class T_B : T_Missing { string X; };\n")
    monkeypatch.setattr(schema, "mof_dir", lambda: tmp_path)
    assert [c.classname for c in schema.load_classes("root/good")] == ["T_A"]
    with pytest.raises(OperationFailed, match=r"bad\.mof") as exc:
        schema.load_classes("bad")
    assert "T_Missing" in str(exc.value)
