"""Integration components (issue 12 item 5) against a real ``vsms serve`` on qemu:///system:
the five components and their settings with their associations, InitiateShutdown of a VM
without an operating system (the job says the guest did not react; the VM keeps running) and
of a VM that is off (refused), and the host's key-value items: add / modify / remove with
their refusals, kept across a restart of the service, reached over WS-Man, refused to a
reader."""

from __future__ import annotations

import time
import uuid
import xml.etree.ElementTree as ET

import pytest
import pywbem
from pypsrp.wsman import SelectorSet, WSMan

from tests.components.conftest import SHUTDOWN_TIMEOUT, Server
from tests.e2e import wbemflow
from tests.wsman.conftest import NS, WMI, epr_into
from vsms.cim import names
from vsms.cim.embedded import parse_instance
from vsms.cim.enums import EnabledState, JobState, ReturnCode
from vsms.mapping import components as mc

pytestmark = pytest.mark.qemu

VSMS = names.VSMS
ITEM = mc.DATA_ITEM


def item(name: str, data: str = "", source: int = 0, cls: str = ITEM) -> str:
    text: str = pywbem.CIMInstance(cls, properties={
        "Name": name, "Data": data, "Source": pywbem.Uint16(source)}).tocimxmlstr()
    return text


def component(conn: pywbem.WBEMConnection, guid: str, cls: str) -> pywbem.CIMInstance:
    (found,) = [i for i in conn.EnumerateInstances(cls) if str(i["SystemName"]) == guid]
    return found


def host_items(conn: pywbem.WBEMConnection, vm: pywbem.CIMInstanceName) -> dict[str, str]:
    (kvp_sd,) = wbemflow.settings_of(conn, vm, mc.KVP_SETTINGS)
    out = {}
    for text in kvp_sd["HostExchangeItems"]:
        inst = parse_instance(text)
        assert inst.classname == ITEM and inst["Source"] == 0
        out[inst["Name"]] = inst["Data"]
    return out


def state(conn: pywbem.WBEMConnection, vm: pywbem.CIMInstanceName) -> int:
    return int(conn.GetInstance(vm)["EnabledState"])


def test_components_and_initiate_shutdown(server: Server) -> None:
    conn = server.conn()
    vm = wbemflow.define_vm(conn, f"ic-{server.root.name}", memory_mb=64)
    guid = str(vm.keybindings["Name"])

    # every component and its settings, associated as the other devices are
    parts = {p.classname for p in conn.AssociatorNames(vm, AssocClass="Msvm_SystemDevice")}
    assert set(mc.COMPONENT_CLASSES) <= parts
    for comp in mc.COMPONENTS:
        inst = component(conn, guid, comp.classname)
        assert inst["DeviceID"] == f"Microsoft:{guid}\\{comp.dev_id}"
        assert conn.GetInstance(inst.path)["DeviceID"] == inst["DeviceID"]
        (sd,) = conn.Associators(inst.path, AssocClass=names.ELEMENT_SETTING_DATA)
        assert sd.classname == comp.settings and sd["ResourceType"] == 1
        assert sd["AllocationUnits"] == "Integration Components"
    sds = {i.classname for i in wbemflow.settings_of(conn, vm)}
    assert set(mc.SETTING_CLASSES) <= sds
    beat = component(conn, guid, mc.HEARTBEAT)
    assert list(beat["OperationalStatus"]) == [12] and beat["EnabledState"] == 3  # VM off
    assert component(conn, guid, mc.KVP)["GuestIntrinsicExchangeItems"] == []

    shutdown = component(conn, guid, mc.SHUTDOWN).path
    rv, out = wbemflow.invoke(conn, shutdown, "InitiateShutdown", Force=False, Reason="test")
    assert rv == ReturnCode.INVALID_STATE, out
    assert "turned off" in out["ErrorDescription"]

    wbemflow.completed(conn, *wbemflow.invoke(conn, vm, "RequestStateChange",
                                              RequestedState=pywbem.Uint16(2)))
    try:
        assert state(conn, vm) == EnabledState.ENABLED
        beat = component(conn, guid, mc.HEARTBEAT)  # no guest agent: no contact
        assert list(beat["OperationalStatus"]) == [12] and beat["EnabledState"] == 2
        # a reader may not shut a guest down
        with server.reader() as reader:
            rv, _ = reader.InvokeMethod("InitiateShutdown", shutdown, Force=False, Reason="x")
            assert rv == ReturnCode.ACCESS_DENIED
        started = time.monotonic()
        rv, out = wbemflow.invoke(conn, shutdown, "InitiateShutdown", Force=True,
                                  Reason="end of test")
        assert rv == ReturnCode.JOB_STARTED, out
        job = wbemflow.wait_job(conn, out["Job"])
        assert time.monotonic() - started >= SHUTDOWN_TIMEOUT
        assert job["JobState"] == JobState.EXCEPTION
        assert job["ErrorCode"] == ReturnCode.TIMEOUT
        text = job["ErrorDescription"]
        assert "did not react" in text and "RequestStateChange" in text, text
        assert "end of test" in job["Description"]
        assert state(conn, vm) == EnabledState.ENABLED  # untouched
    finally:
        wbemflow.invoke(conn, vm, "RequestStateChange", RequestedState=pywbem.Uint16(3))


def wsman_add(server: Server, vm: pywbem.CIMInstanceName, name: str, data: str) -> str:
    """AddKvpItems through WS-Man (pypsrp): the ReturnValue text."""
    uri = WMI + VSMS
    svc = server.conn().EnumerateInstanceNames(VSMS)[0]
    sel = SelectorSet()
    for k, v in svc.keybindings.items():
        sel.add_option(k, str(v))
    body = ET.Element(f"{{{uri}}}AddKvpItems_INPUT")
    epr_into(ET.SubElement(body, f"{{{uri}}}TargetSystem"), vm)
    ET.SubElement(body, f"{{{uri}}}DataItems").text = item(name, data)
    assert server.served.wsman_http_port is not None
    ws = WSMan("127.0.0.1", port=server.served.wsman_http_port, ssl=False, auth="basic",
               encryption="never", username=server.served.user,
               password=server.served.password, operation_timeout=20, read_timeout=60)
    resp = ws.invoke(f"{uri}/AddKvpItems", uri, body, selector_set=sel)
    out = resp.find(f"s:Body/{{{uri}}}AddKvpItems_OUTPUT", NS)
    assert out is not None, ET.tostring(resp)
    rv = out.find(f"{{{uri}}}ReturnValue")
    assert rv is not None
    return rv.text or ""


def test_kvp_items(server: Server) -> None:
    conn = server.conn()
    vm = wbemflow.define_vm(conn, f"kvp-{server.root.name}", memory_mb=64)

    def call(method: str, *items: str, target: pywbem.CIMInstanceName = vm
             ) -> tuple[int, dict[str, object]]:
        return wbemflow.invoke(conn, VSMS, method, TargetSystem=target, DataItems=list(items))

    assert call("AddKvpItems", item("Role", "web"), item("Owner", "ops")) == (0, {})
    assert host_items(conn, vm) == {"Role": "web", "Owner": "ops"}
    refusals = [
        (call("AddKvpItems", item("Role", "db")), "already exists"),
        (call("ModifyKvpItems", item("Missing", "x")), "no such item"),
        (call("RemoveKvpItems", item("Missing")), "no such item"),
        (call("AddKvpItems", item("A", "1"), item("A", "2")), "twice"),
        (call("AddKvpItems", item("Guest", "x", source=1)), "Source 1"),
        (call("AddKvpItems", item("Bad", "x", cls=names.RASD)), ITEM),
        (call("AddKvpItems", item("", "x")), "Name is empty"),
        (call("AddKvpItems", item("Long", "x" * 1025)), "at most 1024"),
        (call("AddKvpItems"), "DataItems"),
        (call("AddKvpItems", item("X", "1"), target=pywbem.CIMInstanceName(
            names.COMPUTER_SYSTEM, {"CreationClassName": names.COMPUTER_SYSTEM,
                                    "Name": str(uuid.uuid4()).upper()})), "no virtual machine"),
    ]
    for (rv, out), words in refusals:
        assert rv == ReturnCode.INVALID_PARAMETER, (words, rv, out)
        assert words in str(out["ErrorDescription"]), (words, out)
    assert host_items(conn, vm) == {"Role": "web", "Owner": "ops"}  # nothing half-done

    assert call("ModifyKvpItems", item("Role", "database")) == (0, {})
    assert call("RemoveKvpItems", item("Owner")) == (0, {})
    assert host_items(conn, vm) == {"Role": "database"}
    with server.reader() as reader:
        rv, _ = reader.InvokeMethod("AddKvpItems", wbemflow.service_path(conn), TargetSystem=vm,
                                    DataItems=[item("R", "x")])
        assert rv == ReturnCode.ACCESS_DENIED
    assert wsman_add(server, vm, "Via", "wsman") == "0"

    server.restart()
    conn = server.conn()
    assert host_items(conn, vm) == {"Role": "database", "Via": "wsman"}

    # the items go along with an export and come back with the import (here with a new ID)
    export_dir = server.root / "kvp-export"
    wbemflow.export(conn, vm, export_dir)
    (inner,) = [p for p in export_dir.iterdir() if p.is_dir()]
    job = wbemflow.run_job(conn, VSMS, "ImportVirtualSystem", ImportDirectory=str(inner),
                           GenerateNewID=True)
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    (imported,) = wbemflow.affected_vms(conn, job)
    assert imported["Name"] != vm.keybindings["Name"]
    assert host_items(conn, imported.path) == {"Role": "database", "Via": "wsman"}
