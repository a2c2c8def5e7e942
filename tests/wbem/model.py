"""A small CIM model of our own for the server tests: MOF + dict-backed providers.

Namespace ``root/test``: a system hierarchy (TST_System <- TST_VirtualSystem), setting data with
an embedded-instance property, jobs, a service whose methods take IN REF, give OUT REF and take
embedded instances, and three associations.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from typing import Any

import pywbem

from vsms.providers.base import Provider
from vsms.providers.registry import Registry
from vsms.wbem.decode import parse_embedded

NS = "root/test"

MOF = """
Qualifier Abstract : boolean = false, Scope(class, association, indication), Flavor(Restricted);
Qualifier Association : boolean = false, Scope(association), Flavor(DisableOverride, ToSubclass);
Qualifier Description : string = null, Scope(any), Flavor(EnableOverride, ToSubclass, Translatable);
Qualifier EmbeddedInstance : string = null, Scope(property, method, parameter);
Qualifier In : boolean = true, Scope(parameter), Flavor(DisableOverride, ToSubclass);
Qualifier Key : boolean = false, Scope(property, reference), Flavor(DisableOverride, ToSubclass);
Qualifier Out : boolean = false, Scope(parameter), Flavor(DisableOverride, ToSubclass);
Qualifier Required : boolean = false, Scope(property, reference, parameter, method),
    Flavor(DisableOverride, ToSubclass);
Qualifier Static : boolean = false, Scope(property, method), Flavor(DisableOverride, ToSubclass);
Qualifier ValueMap : string[], Scope(property, method, parameter),
    Flavor(EnableOverride, ToSubclass);
Qualifier Values : string[], Scope(property, method, parameter),
    Flavor(EnableOverride, ToSubclass, Translatable);

[Abstract, Description("Base of everything here")]
class TST_ManagedElement {
   string Caption;
   string Description;
   string ElementName;
};

[Description("A job")]
class TST_Job : TST_ManagedElement {
   [Key] string InstanceID;
   [ValueMap {"2", "4", "7", "10"}, Values {"New", "Running", "Completed", "Exception"}]
   uint16 JobState;
   uint16 PercentComplete;
};

class TST_System : TST_ManagedElement {
   [Key] string CreationClassName;
   [Key] string Name;
   [ValueMap {"2", "3", "32768"}, Values {"Enabled", "Disabled", "Paused"}]
   uint16 EnabledState;
   uint64 MemoryMB;
   string Tags[];
   datetime Created;
   real64 Ratio;
   boolean Enabled;

   uint32 RequestStateChange([In, Required] uint16 RequestedState,
                             [In] datetime TimeoutPeriod,
                             [In(false), Out] TST_Job REF Job);
};

class TST_VirtualSystem : TST_System {
   string Notes;
};

class TST_SettingData : TST_ManagedElement {
   [Key] string InstanceID;
   uint64 Quantity;
   [EmbeddedInstance("TST_SettingData")] string Inner;
};

class TST_Service : TST_ManagedElement {
   [Key] string SystemCreationClassName;
   [Key] string SystemName;
   [Key] string CreationClassName;
   [Key] string Name;

   uint32 DefineSystem(
      [In, EmbeddedInstance("TST_SettingData")] string SystemSettings,
      [In, EmbeddedInstance("TST_SettingData")] string ResourceSettings[],
      [In] TST_SettingData REF ReferenceConfiguration,
      [In(false), Out] TST_System REF ResultingSystem,
      [In(false), Out] TST_Job REF Job);
   uint32 DestroySystem([In, Required] TST_System REF AffectedSystem,
                        [In(false), Out] TST_Job REF Job);
   uint32 Echo([In] uint8 U8, [In] sint32 S32, [In] boolean Flag, [In] real64 Real,
               [In] string Text, [In] string Texts[], [In] uint16 Numbers[], [In] datetime When,
               [In] char16 Letter, [In] TST_System REF Systems[],
               [In(false), Out] uint8 U8Out, [In(false), Out] sint32 S32Out,
               [In(false), Out] boolean FlagOut, [In(false), Out] string TextsOut[],
               [In(false), Out, EmbeddedInstance("TST_SettingData")] string Setting,
               [In(false), Out] TST_System REF SystemsOut[]);
   [Static] uint32 Version([In(false), Out] string Text);
};

[Association, Description("System to its settings")]
class TST_SystemSettings {
   [Key] TST_System REF ManagedElement;
   [Key] TST_SettingData REF SettingData;
};

[Association]
class TST_HostedService {
   [Key] TST_System REF Antecedent;
   [Key] TST_Service REF Dependent;
};

[Association]
class TST_AffectedJobElement {
   [Key] TST_ManagedElement REF AffectedElement;
   [Key] TST_Job REF AffectingElement;
};
"""


def compile_model() -> tuple[list[pywbem.CIMClass], list[pywbem.CIMQualifierDeclaration]]:
    repo = pywbem.MOFWBEMConnection()
    pywbem.MOFCompiler(handle=repo, log_func=None).compile_string(MOF, NS)
    return list(repo.classes[NS].values()), list(repo.qualifiers[NS].values())


def _keys(path: pywbem.CIMInstanceName) -> dict[str, str]:
    return {k.lower(): str(v) for k, v in path.keybindings.items()}


class Store:
    """Instances by class name (exact), thread-safe; the providers below share one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_class: dict[str, list[pywbem.CIMInstance]] = {}

    def add(self, inst: pywbem.CIMInstance) -> pywbem.CIMInstance:
        with self.lock:
            self.by_class.setdefault(inst.classname.lower(), []).append(inst)
        return inst

    def remove(self, path: pywbem.CIMInstanceName) -> None:
        with self.lock:
            items = self.by_class.get(path.classname.lower(), [])
            items[:] = [i for i in items if _keys(i.path) != _keys(path)]


class DictProvider(Provider):
    def __init__(self, store: Store, classnames: tuple[str, ...]) -> None:
        self.store = store
        self.classnames = classnames

    def enumerate(self, classname: str) -> list[pywbem.CIMInstance]:
        with self.store.lock:
            return [i.copy() for i in self.store.by_class.get(classname.lower(), [])]

    def get(self, path: pywbem.CIMInstanceName) -> pywbem.CIMInstance | None:
        for inst in self.enumerate(path.classname):
            if _keys(inst.path) == _keys(path):
                return inst
        return None


def system(name: str, cls: str = "TST_System", **props: Any) -> pywbem.CIMInstance:
    path = pywbem.CIMInstanceName(cls, {"CreationClassName": cls, "Name": name}, namespace=NS)
    inst = pywbem.CIMInstance(cls, path=path)
    inst["CreationClassName"] = cls
    inst["Name"] = name
    inst["ElementName"] = props.pop("ElementName", name)
    inst["EnabledState"] = pywbem.Uint16(props.pop("EnabledState", 2))
    inst["MemoryMB"] = pywbem.Uint64(props.pop("MemoryMB", 512))
    inst["Tags"] = pywbem.CIMProperty("Tags", props.pop("Tags", ["a", "b"]), type="string")
    inst["Created"] = pywbem.CIMDateTime("20240102030405.000000+000")
    inst["Ratio"] = pywbem.Real64(props.pop("Ratio", 0.5))
    inst["Enabled"] = props.pop("Enabled", True)
    inst["Caption"] = pywbem.CIMProperty("Caption", None, type="string")
    for k, v in props.items():
        inst[k] = v
    return inst


def setting(iid: str, quantity: int, inner: pywbem.CIMInstance | None = None) -> pywbem.CIMInstance:
    path = pywbem.CIMInstanceName("TST_SettingData", {"InstanceID": iid}, namespace=NS)
    inst = pywbem.CIMInstance("TST_SettingData", path=path)
    inst["InstanceID"] = iid
    inst["Quantity"] = pywbem.Uint64(quantity)
    if inner is not None:
        inner = inner.copy()
        inner.path = None
    inst["Inner"] = pywbem.CIMProperty("Inner", inner, type="string",
                                       embedded_object="instance" if inner else None)
    return inst


def assoc(cls: str, **refs: pywbem.CIMInstanceName) -> pywbem.CIMInstance:
    path = pywbem.CIMInstanceName(cls, dict(refs), namespace=NS)
    inst = pywbem.CIMInstance(cls, path=path)
    for k, v in refs.items():
        inst[k] = pywbem.CIMProperty(k, v, type="reference", reference_class=v.classname)
    return inst


SERVICE_PATH = pywbem.CIMInstanceName("TST_Service", {
    "SystemCreationClassName": "TST_System", "SystemName": "host1",
    "CreationClassName": "TST_Service", "Name": "svc"}, namespace=NS)


class ServiceProvider(DictProvider):
    """TST_Service and TST_System methods."""

    def __init__(self, store: Store) -> None:
        super().__init__(store, ("TST_Service", "TST_System", "TST_VirtualSystem"))
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._ids = itertools.count(1)

    def _job(self, state: int = 7) -> pywbem.CIMInstanceName:
        iid = f"job-{next(self._ids)}"
        path = pywbem.CIMInstanceName("TST_Job", {"InstanceID": iid})
        job = pywbem.CIMInstance("TST_Job", path=path.copy())
        job.path.namespace = NS
        job["InstanceID"] = iid
        job["JobState"] = pywbem.Uint16(state)
        job["PercentComplete"] = pywbem.Uint16(100)
        self.store.add(job)
        return path  # no namespace: the server completes it

    def invoke(self, target: Any, method: str,
               params: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        self.calls.append((method, dict(params)))
        if method == "DefineSystem":
            text = params.get("SystemSettings")
            if text is None:
                return 32773, {}
            settings = text if isinstance(text, pywbem.CIMInstance) else parse_embedded(text)
            name = str(settings["ElementName"])
            vs = self.store.add(system(name, "TST_VirtualSystem", Notes="defined"))
            return 4096, {"Job": self._job(), "ResultingSystem": vs.path}
        if method == "DestroySystem":
            ref = params["AffectedSystem"]
            if self.get(ref) is None:
                return 32773, {}
            self.store.remove(ref)
            return 4096, {"Job": self._job()}
        if method == "RequestStateChange":
            return 0, {}
        if method == "Version":
            return 0, {"Text": "1.2.3"}
        if method == "Echo":
            inner = setting("echo", 7)
            inner.path = None
            return 0, {"U8Out": params.get("U8"), "S32Out": params.get("S32"),
                       "FlagOut": params.get("Flag"), "TextsOut": params.get("Texts"),
                       "Setting": inner, "SystemsOut": params.get("Systems")}
        return 32770, {}


def build_registry(host: str = "testhost", systems: int = 3) -> tuple[Registry, ServiceProvider]:
    classes, quals = compile_model()
    reg = Registry(host)
    reg.add_namespace(NS, classes, quals)
    store = Store()
    svc = ServiceProvider(store)
    service = pywbem.CIMInstance("TST_Service", path=SERVICE_PATH.copy())
    for k, v in SERVICE_PATH.keybindings.items():
        service[k] = v
    service["ElementName"] = "Test service"
    store.add(service)
    host_sys = store.add(system("host1", ElementName="Host"))
    store.add(assoc("TST_HostedService", Antecedent=host_sys.path, Dependent=SERVICE_PATH))
    for i in range(systems):
        vs = store.add(system(f"vm{i}", "TST_VirtualSystem", ElementName=f"vm {i}",
                              EnabledState=2 if i % 2 == 0 else 3, MemoryMB=256 * (i + 1),
                              Notes=f"note {i}"))
        sd = store.add(setting(f"sd-{i}", i, inner=setting(f"inner-{i}", 100 + i)))
        store.add(assoc("TST_SystemSettings", ManagedElement=vs.path, SettingData=sd.path))
    reg.add_provider(NS, svc)
    reg.add_provider(NS, DictProvider(store, ("TST_SettingData", "TST_Job", "TST_SystemSettings",
                                              "TST_HostedService", "TST_AffectedJobElement")))
    return reg, svc
