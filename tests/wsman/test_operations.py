"""WS-Management against a real ``vsms serve`` on qemu:///system through pypsrp's WSMan: Identify,
Get, Enumerate + Pull, optimized enumeration, EPR modes, WQL, the selector and association
filters, Invoke (embedded-instance and EPR arguments, OUT EPRs), Release, and the faults WMI
clients test for."""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import pytest
import pywbem
import requests
from pypsrp.exceptions import WSManFaultError
from pypsrp.wsman import NAMESPACES, OptionSet, SelectorSet

from tests.wsman.conftest import NS, WMI, WsServer, text
from vsms.cim import names

pytestmark = pytest.mark.qemu
WQL = "http://schemas.microsoft.com/wbem/wsman/1/WQL"
WSEN = NAMESPACES["wsen"]
WSMAN = NAMESPACES["wsman"]
CS = WMI + "Msvm_ComputerSystem"
VSMS_URI = WMI + "Msvm_VirtualSystemManagementService"


def cimxml(ws: WsServer) -> pywbem.WBEMConnection:
    s = ws.served
    return pywbem.WBEMConnection(s.url, (s.user, s.password), timeout=120,
                                 default_namespace="root/virtualization")


def enumerate_all(ws: WsServer, uri: str, *, wql: str | None = None, mode: str | None = None,
                  max_elements: int = 1, enum: ET.Element | None = None) -> list[ET.Element]:
    """Enumerate (``enum``: the body, default built from wql and mode), then Pull until
    EndOfSequence; the items."""
    w = ws.client()
    enum = enum if enum is not None else ET.Element(f"{{{WSEN}}}Enumerate")
    if mode:
        ET.SubElement(enum, f"{{{WSMAN}}}EnumerationMode").text = mode
    if wql:
        ET.SubElement(enum, f"{{{WSMAN}}}Filter", Dialect=WQL).text = wql
    resp = w.enumerate(uri, resource=enum)
    ctx = resp.find("n:EnumerateResponse/n:EnumerationContext", NS)
    assert ctx is not None and ctx.text
    items: list[ET.Element] = []
    key: str | None = ctx.text
    for _ in range(10_000):
        if key is None:
            break
        pull = ET.Element(f"{{{WSEN}}}Pull")
        ET.SubElement(pull, f"{{{WSEN}}}EnumerationContext").text = key
        ET.SubElement(pull, f"{{{WSEN}}}MaxElements").text = str(max_elements)
        got = w.pull(uri, resource=pull).find("n:PullResponse", NS)
        assert got is not None
        batch = got.find("n:Items", NS)
        items.extend(list(batch) if batch is not None else [])
        nxt = got.find("n:EnumerationContext", NS)
        ended = got.find("n:EndOfSequence", NS) is not None
        assert ended == (nxt is None)
        key = None if nxt is None else nxt.text
    return items


def prop(el: ET.Element, name: str) -> str | None:
    ns = el.tag[1:].split("}")[0]
    found = el.find(f"{{{ns}}}{name}")
    return None if found is None else found.text


def host_selectors(ws: WsServer) -> SelectorSet:
    host = next(i for i in cimxml(ws).EnumerateInstanceNames("Msvm_ComputerSystem")
                if i["Name"] == cimxml(ws).EnumerateInstances(
                    "Msvm_ComputerSystem", PropertyList=["Name"])[0]["Name"])
    sel = SelectorSet()
    for k, v in host.keybindings.items():
        sel.add_option(k, str(v))
    return sel


def test_identify(ws: WsServer) -> None:
    body = ('<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
            'xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd">'
            '<s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>')
    r = post(ws, body)
    assert r.status_code == 200, r.text
    root = ET.fromstring(r.content)
    idr = "{http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd}"
    resp = root.find(f"s:Body/{idr}IdentifyResponse", NS)
    assert resp is not None
    assert text(resp.find(f"{idr}ProtocolVersion")) == WSMAN
    assert text(resp.find(f"{idr}ProductVendor")) == "vsms"
    assert text(resp.find(f"{idr}ProductVersion"))


def test_enumerate_pull_and_get_match_cimxml(ws: WsServer) -> None:
    conn = cimxml(ws)
    want = {i["Name"]: i for i in conn.EnumerateInstances("Msvm_ComputerSystem")}
    items = enumerate_all(ws, CS)
    assert sorted(prop(i, "Name") or "" for i in items) == sorted(want)
    first = items[0]
    assert first.tag == f"{{{CS}}}Msvm_ComputerSystem"
    assert first.get(f"{{{NS['xsi']}}}type", "").endswith("Msvm_ComputerSystem_Type")
    name = prop(first, "Name")
    assert name is not None
    cim = want[name]
    # properties in MOF order, values as over CIM-XML
    cls = conn.GetClass("Msvm_ComputerSystem", LocalOnly=False)
    tags = [c.tag.split("}")[1] for c in first]
    assert tags == [p for p in cls.properties if p in tags]
    assert prop(first, "ElementName") == cim["ElementName"]
    assert prop(first, "EnabledState") == str(cim["EnabledState"])
    # Get by selectors: names and values in another case
    sel = SelectorSet()
    sel.add_option("creationclassname", "MSVM_COMPUTERSYSTEM")
    sel.add_option("NAME", name.lower())
    got = ws.client().get(CS, selector_set=sel)
    inst = got.find(f"{{{CS}}}Msvm_ComputerSystem")
    assert inst is not None and prop(inst, "Name") == name


def test_optimized_enumeration_and_epr_modes(ws: WsServer) -> None:
    w = ws.client()
    enum = ET.Element(f"{{{WSEN}}}Enumerate")
    ET.SubElement(enum, f"{{{WSMAN}}}OptimizeEnumeration")
    ET.SubElement(enum, f"{{{WSMAN}}}MaxElements").text = "32000"
    resp = w.enumerate(CS, resource=enum).find("n:EnumerateResponse", NS)
    assert resp is not None
    items = resp.find("w:Items", NS)
    assert items is not None and len(items) == len(cimxml(ws).EnumerateInstanceNames(
        "Msvm_ComputerSystem"))
    assert resp.find("w:EndOfSequence", NS) is not None
    eprs = enumerate_all(ws, CS, mode="EnumerateEPR", max_elements=5)
    assert eprs and all(e.tag == f"{{{NS['a']}}}EndpointReference" for e in eprs)
    sels = {s.get("Name"): s.text for s in eprs[0].iterfind(
        "a:ReferenceParameters/w:SelectorSet/w:Selector", NS)}
    assert sels["__cimnamespace"] == "root/virtualization"
    assert sels["CreationClassName"] == "Msvm_ComputerSystem"
    both = enumerate_all(ws, CS, mode="EnumerateObjectAndEPR", max_elements=5)
    assert both and all(b.tag == f"{{{WSMAN}}}Item" and len(b) == 2 for b in both)


def test_wql_over_the_namespace_and_a_class(ws: WsServer) -> None:
    host = cimxml(ws).EnumerateInstances("Msvm_ComputerSystem")
    name = host[0]["Name"]
    q = f"SELECT Name, ElementName FROM Msvm_ComputerSystem WHERE Name = '{name.lower()}'"
    for uri in (WMI + "*", CS):
        items = enumerate_all(ws, uri, wql=q)
        assert [prop(i, "Name") for i in items] == [name]
        assert [c.tag.split("}")[1] for c in items[0]] == ["ElementName", "Name"] or \
            {c.tag.split("}")[1] for c in items[0]} == {"ElementName", "Name"}
    with pytest.raises(WSManFaultError) as err:
        enumerate_all(ws, WMI + "*", wql="SELEKT nothing")
    assert "CannotProcessFilter" in str(err.value.reason) or err.value.code


def association_enum(vm: pywbem.CIMInstanceName, kind: str, **params: str) -> ET.Element:
    """An Enumerate with the DMTF association filter on ``vm`` (``kind``: AssociatedInstances or
    AssociationInstances; ``params``: AssociationClassName, ResultClassName, Role...)."""
    enum = ET.Element(f"{{{WSEN}}}Enumerate")
    filt = ET.SubElement(enum, f"{{{WSMAN}}}Filter", Dialect=(
        "http://schemas.dmtf.org/wbem/wsman/1/cimbinding/associationFilter"))
    b = "http://schemas.dmtf.org/wbem/wsman/1/cimbinding.xsd"
    ai = ET.SubElement(filt, f"{{{b}}}{kind}")
    obj = ET.SubElement(ai, f"{{{b}}}Object")
    ET.SubElement(obj, f"{{{NS['a']}}}Address").text = (
        "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous")
    rp = ET.SubElement(obj, f"{{{NS['a']}}}ReferenceParameters")
    ET.SubElement(rp, f"{{{WSMAN}}}ResourceURI").text = CS
    ss = ET.SubElement(rp, f"{{{WSMAN}}}SelectorSet")
    for k, v in vm.keybindings.items():
        ET.SubElement(ss, f"{{{WSMAN}}}Selector", Name=k).text = str(v)
    for k, v in params.items():
        ET.SubElement(ai, f"{{{b}}}{k}").text = v
    return enum


def test_selector_and_association_filters(ws: WsServer) -> None:
    conn = cimxml(ws)
    gsd = pywbem.CIMInstance(names.VSGSD,
                             properties={"ElementName": f"assoc-{ws.served.root.name}"})
    out = invoke(ws, "DefineVirtualSystem", [("SystemSettingData", gsd.tocimxmlstr())])
    guid = next(sel.text for sel in out.iterfind(
        f"{{{VSMS_URI}}}DefinedSystem/a:ReferenceParameters/w:SelectorSet/w:Selector", NS)
        if sel.get("Name") == "Name")
    vm = pywbem.CIMInstanceName("Msvm_ComputerSystem", {
        "CreationClassName": "Msvm_ComputerSystem", "Name": guid},
        namespace="root/virtualization")
    w = ws.client()
    anywhere = "http://schemas.dmtf.org/wbem/wscim/1/*"
    cases = [("AssociatedInstances", {}, lambda: conn.Associators(vm)),
             ("AssociatedInstances", {"AssociationClassName": "Msvm_SettingsDefineState",
                                      "ResultClassName": "Msvm_VirtualSystemSettingData"},
              lambda: conn.Associators(vm, AssocClass="Msvm_SettingsDefineState",
                                       ResultClass="Msvm_VirtualSystemSettingData")),
             ("AssociationInstances", {}, lambda: conn.References(vm)),
             ("AssociationInstances", {"ResultClassName": "Msvm_SettingsDefineState"},
              lambda: conn.References(vm, ResultClass="Msvm_SettingsDefineState"))]
    for kind, params, cim in cases:
        want = sorted(i.classname for i in cim())
        assert want, (kind, params)
        # plain, pulled one at a time with the Enumerate's resource URI (it names no namespace)
        pulled = enumerate_all(ws, anywhere, enum=association_enum(vm, kind, **params))
        assert sorted(i.tag.split("}")[1] for i in pulled) == want, (kind, params)
        enum = association_enum(vm, kind, **params)
        ET.SubElement(enum, f"{{{WSMAN}}}OptimizeEnumeration")
        ET.SubElement(enum, f"{{{WSMAN}}}MaxElements").text = "1000"
        items = w.enumerate(anywhere, resource=enum).find("n:EnumerateResponse/w:Items", NS)
        assert items is not None
        assert sorted(i.tag.split("}")[1] for i in items) == want, (kind, params)
    svc = conn.EnumerateInstanceNames("Msvm_VirtualSystemManagementService")[0]
    # the selector filter
    enum = ET.Element(f"{{{WSEN}}}Enumerate")
    filt = ET.SubElement(enum, f"{{{WSMAN}}}Filter", Dialect=(
        "http://schemas.dmtf.org/wbem/wsman/1/wsman/SelectorFilter"))
    ss = ET.SubElement(filt, f"{{{WSMAN}}}SelectorSet")
    ET.SubElement(ss, f"{{{WSMAN}}}Selector", Name="Name").text = str(svc["Name"])
    ET.SubElement(enum, f"{{{WSMAN}}}OptimizeEnumeration")
    got = w.enumerate(VSMS_URI, resource=enum).find("n:EnumerateResponse/w:Items", NS)
    assert got is not None and [prop(i, "Name") for i in got] == [svc["Name"]]


def vsms_selectors(ws: WsServer, partial: bool = False) -> SelectorSet:
    svc = cimxml(ws).EnumerateInstanceNames("Msvm_VirtualSystemManagementService")[0]
    sel = SelectorSet()
    for k, v in svc.keybindings.items():
        if not partial or k.lower() in ("creationclassname", "systemcreationclassname"):
            sel.add_option(k, str(v))
    return sel


def invoke(ws: WsServer, method: str, params: list[tuple[str, Any]], *,
           uri: str = VSMS_URI, sel: SelectorSet | None = None, user: str | None = None
           ) -> ET.Element:
    """Invoke; the <Method>_OUTPUT element. A param value: text, or an ET element (an EPR)."""
    body = ET.Element(f"{{{uri}}}{method}_INPUT")
    for name, value in params:
        el = ET.SubElement(body, f"{{{uri}}}{name}")
        if isinstance(value, ET.Element):
            el.extend(list(value))
        else:
            el.text = value
    w = ws.reader() if user == "reader" else ws.client()
    resp = w.invoke(f"{uri}/{method}", uri, body, selector_set=sel or vsms_selectors(ws))
    out = resp.find(f"s:Body/{{{uri}}}{method}_OUTPUT", NS)
    assert out is not None, ET.tostring(resp)
    return out


def epr_element(out: ET.Element) -> ET.Element:
    holder = ET.Element("x")
    holder.extend(list(out))
    return holder


def test_invoke_define_with_embedded_instance_then_destroy_with_epr(ws: WsServer) -> None:
    name = f"wsman-{ws.served.root.name}-{uuid.uuid4().hex[:4]}"
    gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": name})
    out = invoke(ws, "DefineVirtualSystem", [("SystemSettingData", gsd.tocimxmlstr())],
                 sel=vsms_selectors(ws, partial=True))
    rv = text(out.find(f"{{{VSMS_URI}}}ReturnValue"))
    defined = out.find(f"{{{VSMS_URI}}}DefinedSystem")
    assert rv in ("0", "4096"), ET.tostring(out)
    assert defined is not None
    sels = {s.get("Name"): s.text for s in defined.iterfind(
        "a:ReferenceParameters/w:SelectorSet/w:Selector", NS)}
    assert text(defined.find("a:ReferenceParameters/w:ResourceURI", NS)) == CS
    assert sels["__cimnamespace"] == "root/virtualization"
    if rv == "4096":
        wait_job(ws, out)
    vm = cimxml(ws).GetInstance(pywbem.CIMInstanceName(
        "Msvm_ComputerSystem", {"CreationClassName": "Msvm_ComputerSystem",
                                "Name": sels["Name"]}))
    assert vm["ElementName"] == name
    out = invoke(ws, "DestroyVirtualSystem", [("ComputerSystem", epr_element(defined))])
    rv = text(out.find(f"{{{VSMS_URI}}}ReturnValue"))
    assert rv in ("0", "4096"), ET.tostring(out)
    if rv == "4096":
        assert wait_job(ws, out) == "7"
    with pytest.raises(pywbem.CIMError):
        cimxml(ws).GetInstance(vm.path)


def wait_job(ws: WsServer, out: ET.Element, timeout: float = 120) -> str:
    """Poll the OUT Job (an EPR) by Get until it has finished; its JobState."""
    import time
    uri_ns = out.tag[1:].split("}")[0]
    job = out.find(f"{{{uri_ns}}}Job")
    assert job is not None
    uri = text(job.find("a:ReferenceParameters/w:ResourceURI", NS))
    sel = SelectorSet()
    for s in job.iterfind("a:ReferenceParameters/w:SelectorSet/w:Selector", NS):
        sel.add_option(s.get("Name") or "", s.text or "")
    deadline = time.monotonic() + timeout
    while True:
        got = ws.client().get(uri, selector_set=sel)
        inst = got[0]
        state = prop(inst, "JobState") or ""
        if int(state) in (7, 8, 9, 10, 11, 12):
            return state
        assert time.monotonic() < deadline, f"job still in state {state}"
        time.sleep(0.2)


def fault_of(call: Any) -> WSManFaultError:
    with pytest.raises(WSManFaultError) as err:
        call()
    return err.value


def test_faults_wmi_clients_test_for(ws: WsServer) -> None:
    w = ws.client()
    enum = ET.Element(f"{{{WSEN}}}Enumerate")
    ET.SubElement(enum, f"{{{WSMAN}}}Filter", Dialect=WQL).text = \
        "SELECT * FROM Msvm_ComputerSystem"
    # probing the v2 namespace: "invalid namespace"; never data from root/virtualization
    err = fault_of(lambda: w.enumerate(
        "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/*",
        resource=enum))
    assert err.code == 2150858778
    err = fault_of(lambda: w.get(WMI + "Msvm_NoSuchClass", selector_set=vsms_selectors(ws)))
    assert err.code == 2150858778
    sel = SelectorSet()
    sel.add_option("NoSuchKey", "x")
    err = fault_of(lambda: w.get(VSMS_URI, selector_set=sel))
    assert err.code == 2150858843
    sel = SelectorSet()
    sel.add_option("CreationClassName", "Msvm_ComputerSystem")
    sel.add_option("Name", "NO-SUCH-VM")
    err = fault_of(lambda: w.get(CS, selector_set=sel))
    assert "NO-SUCH-VM" in str(err.reason)
    pull = ET.Element(f"{{{WSEN}}}Pull")
    ET.SubElement(pull, f"{{{WSEN}}}EnumerationContext").text = "uuid:" + "0" * 32
    err = fault_of(lambda: w.pull(CS, resource=pull))
    assert err.code == 2150858776
    # Put / Create / Delete: not supported, a fault (not a 500 with a traceback)
    err = fault_of(lambda: w.delete(CS, selector_set=sel))
    assert err.code == 2150858771
    err = fault_of(lambda: w.create(CS, ET.Element(f"{{{CS}}}Msvm_ComputerSystem")))
    assert err.code == 2150858771
    # an unknown method
    err = fault_of(lambda: w.invoke(VSMS_URI + "/NoSuchMethod", VSMS_URI,
                                    ET.Element(f"{{{VSMS_URI}}}NoSuchMethod_INPUT"),
                                    selector_set=vsms_selectors(ws)))
    assert err.code == 2150858771


def test_release_frees_the_context(ws: WsServer) -> None:
    w = ws.client()
    resp = w.enumerate(CS, resource=ET.Element(f"{{{WSEN}}}Enumerate"))
    ctx = text(resp.find("n:EnumerateResponse/n:EnumerationContext", NS))
    rel = ET.Element(f"{{{WSEN}}}Release")
    ET.SubElement(rel, f"{{{WSEN}}}EnumerationContext").text = ctx
    w.invoke("http://schemas.xmlsoap.org/ws/2004/09/enumeration/Release", CS, rel)
    pull = ET.Element(f"{{{WSEN}}}Pull")
    ET.SubElement(pull, f"{{{WSEN}}}EnumerationContext").text = ctx
    assert fault_of(lambda: w.pull(CS, resource=pull)).code == 2150858776
    # another user's context is not found either
    resp = w.enumerate(CS, resource=ET.Element(f"{{{WSEN}}}Enumerate"))
    ctx = text(resp.find("n:EnumerateResponse/n:EnumerationContext", NS))
    pull = ET.Element(f"{{{WSEN}}}Pull")
    ET.SubElement(pull, f"{{{WSEN}}}EnumerationContext").text = ctx
    assert fault_of(lambda: ws.reader().pull(CS, resource=pull)).code == 2150858776
    assert w.pull(CS, resource=pull).find("n:PullResponse/n:Items", NS) is not None


def test_a_readers_import_is_refused_and_audited(ws: WsServer) -> None:
    out = invoke(ws, "ImportVirtualSystem", [("ImportDirectory", str(ws.served.root / "nope")),
                                             ("GenerateNewID", "true")], user="reader")
    assert text(out.find(f"{{{VSMS_URI}}}ReturnValue")) == "32769"
    lines = [json.loads(line) for line in
             (ws.served.state_dir / "audit.log").read_text().splitlines() if line.strip()]
    mine = [x for x in lines if x.get("method") == "ImportVirtualSystem"
            and x.get("user") == "wsman-reader"]
    assert mine and mine[-1]["allowed"] is False and mine[-1]["return_value"] == 32769


def post(ws: WsServer, body: str | bytes, *, auth: bool = True,
         ctype: str = "application/soap+xml;charset=UTF-8", path: str = "/wsman"
         ) -> requests.Response:
    return requests.post(f"http://127.0.0.1:{ws.port}{path}", data=body,
                         headers={"Content-Type": ctype},
                         auth=(ws.served.user, ws.served.password) if auth else None,
                         timeout=60)


def test_options_are_accepted(ws: WsServer) -> None:
    opts = OptionSet()
    opts.add_option("wmi:__MI_OPERATIONOPTIONS_SOMETHING", "x")
    got = ws.client().get(VSMS_URI, selector_set=vsms_selectors(ws), option_set=opts)
    assert got.find(f"{{{VSMS_URI}}}Msvm_VirtualSystemManagementService") is not None


def test_https_listener_and_the_dmtf_uri(ws: WsServer) -> None:
    from pypsrp.wsman import WSMan
    port = ws.served.wsman_https_port
    assert port is not None
    w = WSMan("127.0.0.1", port=port, ssl=True, auth="basic", cert_validation=False,
              username=ws.served.user, password=ws.served.password, operation_timeout=20)
    got = w.get(VSMS_URI, selector_set=vsms_selectors(ws))
    assert got.find(f"{{{VSMS_URI}}}Msvm_VirtualSystemManagementService") is not None
    # a CIM_ class by its DMTF URI with __cimnamespace: the instances in their own classes
    sel = SelectorSet()
    sel.add_option("__cimnamespace", "root/virtualization")
    enum = ET.Element(f"{{{WSEN}}}Enumerate")
    ET.SubElement(enum, f"{{{WSMAN}}}OptimizeEnumeration")
    ET.SubElement(enum, f"{{{WSMAN}}}MaxElements").text = "1000"
    resp = w.enumerate("http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ComputerSystem",
                       resource=enum, selector_set=sel)
    items = resp.find("n:EnumerateResponse/w:Items", NS)
    assert items is not None
    want = cimxml(ws).EnumerateInstanceNames("CIM_ComputerSystem")
    assert sorted(i.tag.split("}")[1] for i in items) == sorted(p.classname for p in want)


def test_a_reader_may_read_but_not_delete(ws: WsServer) -> None:
    r = ws.reader()
    assert r.get(VSMS_URI, selector_set=vsms_selectors(ws)) is not None
    err = fault_of(lambda: r.delete(VSMS_URI, selector_set=vsms_selectors(ws)))
    assert err.code == 5 and "access denied" in str(err.reason).lower()


def test_a_pull_that_cannot_write_an_item_within_max_time_times_out(ws: WsServer) -> None:
    w = ws.client()
    resp = w.enumerate(CS, resource=ET.Element(f"{{{WSEN}}}Enumerate"))
    ctx = text(resp.find("n:EnumerateResponse/n:EnumerationContext", NS))
    pull = ET.Element(f"{{{WSEN}}}Pull")
    ET.SubElement(pull, f"{{{WSEN}}}EnumerationContext").text = ctx
    ET.SubElement(pull, f"{{{WSEN}}}MaxTime").text = "PT0.000001S"  # gone before any item
    err = fault_of(lambda: w.pull(CS, resource=pull))
    assert err.code == 2150858793 and "MaxTime" in str(err.reason)  # wsman:TimedOut
    # the context is still valid and nothing was taken from it: a Pull with time to spare
    # gets the first items
    pull = ET.Element(f"{{{WSEN}}}Pull")
    ET.SubElement(pull, f"{{{WSEN}}}EnumerationContext").text = ctx
    ET.SubElement(pull, f"{{{WSEN}}}MaxTime").text = "PT60S"
    ET.SubElement(pull, f"{{{WSEN}}}MaxElements").text = "100"
    got = w.pull(CS, resource=pull).find("n:PullResponse", NS)
    assert got is not None and got.find("n:EndOfSequence", NS) is not None
    items = got.find("n:Items", NS)
    assert items is not None
    seen = {el.findtext(f"{{{CS}}}Name") for el in items}
    assert seen == {str(p["Name"]) for p in cimxml(ws).EnumerateInstanceNames(
        "Msvm_ComputerSystem")}  # every one, the first included


def test_the_host_hosts_every_service_over_both_protocols(ws: WsServer) -> None:
    conn = cimxml(ws)
    services = {"Msvm_VirtualSystemManagementService", "Msvm_ImageManagementService",
                "Msvm_VirtualSwitchManagementService"}
    want = {str(p): p for cn in services for p in conn.EnumerateInstanceNames(cn)}
    assert len(want) == 3
    host = next(p for p in conn.EnumerateInstanceNames("Msvm_ComputerSystem")
                if p["Name"] == next(iter(want.values()))["SystemName"])
    links = conn.EnumerateInstances("Msvm_HostedService")
    assert {str(i["Dependent"]) for i in links} >= set(want)
    assert all(i["Antecedent"] == host for i in links)
    got = conn.Associators(host, AssocClass="Msvm_HostedService")
    assert {i.classname for i in got} >= services
    # the services from the host over WS-Man (association filter), and the links
    enum = association_enum(host, "AssociatedInstances",
                            AssociationClassName="Msvm_HostedService")
    ET.SubElement(enum, f"{{{WSMAN}}}OptimizeEnumeration")
    ET.SubElement(enum, f"{{{WSMAN}}}MaxElements").text = "100"
    items = ws.client().enumerate("http://schemas.dmtf.org/wbem/wscim/1/*", resource=enum).find(
        "n:EnumerateResponse/w:Items", NS)
    assert items is not None
    assert {i.tag.split("}")[1] for i in items} >= services
    hosted = enumerate_all(ws, WMI + "Msvm_HostedService")
    assert len(hosted) == len(links)
