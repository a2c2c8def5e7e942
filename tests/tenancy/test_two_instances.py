"""Finding 1 of issue 9, replayed: two real ``vsms serve`` on qemu:///system, each with its own
state directory, storage root and users file. Neither sees, exports, destroys or starts the
other's VM; a domain made with virsh is invisible until ``vsms vm adopt`` (audited); a VM whose
disk lies outside the roots exports with 32769 and a reason; an import that keeps the GUID of
the other instance's VM is refused without naming it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pywbem

from tests.cli import served
from tests.conftest import QEMU_URI, fresh_dir
from tests.e2e import wbemflow
from vsms.cim import names
from vsms.cim.enums import JobState, ReturnCode
from vsms.model.vm import new_guid

pytestmark = pytest.mark.qemu


@dataclass
class Instance:
    served: served.Served
    root: Path

    def connect(self) -> pywbem.WBEMConnection:
        return pywbem.WBEMConnection(self.served.url, (served.USER, self.served.password),
                                     default_namespace=names.NAMESPACE, timeout=120)


@dataclass
class Pair:
    a: Instance
    b: Instance
    vm_a: pywbem.CIMInstanceName
    vm_b: pywbem.CIMInstanceName
    disk_b: Path


def _start(root: Path) -> Instance:
    return Instance(served.start(root / "state", [root], QEMU_URI), root)


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    roots = [fresh_dir(), fresh_dir()]
    instances: list[Instance] = []
    try:
        for root in roots:
            instances.append(_start(root))
        a, b = instances
        vm_a = wbemflow.vm_with_disk(a.connect(), a.root, f"tenant-a-{a.root.name}")
        vm_b = wbemflow.vm_with_disk(b.connect(), b.root, f"tenant-b-{b.root.name}")
        yield Pair(a, b, vm_a, vm_b, b.root / "vms" / f"tenant-b-{b.root.name}.vhd")
    finally:
        for inst in instances:
            served.stop(inst.served.proc)
        for root in roots:
            served.remove_vms(QEMU_URI, root)
            shutil.rmtree(root, ignore_errors=True)


def guid(vm: pywbem.CIMInstanceName) -> str:
    return str(vm.keybindings["Name"]).upper()


def _everything(conn: pywbem.WBEMConnection) -> str:
    """Every instance and path a client can list, as text (to look for the other's VM)."""
    parts = []
    for cls in ("CIM_ManagedElement", names.SETTINGS_DEFINE_STATE, names.VSSD_COMPONENT,
                names.ELEMENT_SETTING_DATA, names.SYSTEM_EXPORT_SD, names.AFFECTED_JOB_ELEMENT):
        for inst in conn.EnumerateInstances(cls):
            parts.append(str(inst.path) + repr(dict(inst.items())))
    return "\n".join(parts)


@pytest.mark.parametrize("me, other", [("a", "b"), ("b", "a")])
def test_neither_sees_exports_destroys_nor_starts_the_other(pair: Pair, me: str,
                                                            other: str) -> None:
    mine: Instance = getattr(pair, me)
    theirs_vm: pywbem.CIMInstanceName = getattr(pair, f"vm_{other}")
    conn = mine.connect()
    text = _everything(conn).upper()
    assert guid(getattr(pair, f"vm_{me}")) in text  # the listing works ...
    assert guid(theirs_vm) not in text  # ... and shows nothing of the other's VM
    assert getattr(pair, other).root.name.upper() not in text  # nor its disk path
    with pytest.raises(pywbem.CIMError) as err:
        conn.GetInstance(theirs_vm)
    assert err.value.status_code == pywbem.CIM_ERR_NOT_FOUND
    with pytest.raises(pywbem.CIMError) as err:
        conn.InvokeMethod("RequestStateChange", theirs_vm, RequestedState=pywbem.Uint16(2))
    assert err.value.status_code == pywbem.CIM_ERR_NOT_FOUND
    target = mine.root / f"stolen-{other}"
    target.mkdir()
    for method, params in (
            ("ExportVirtualSystem", {"ComputerSystem": theirs_vm, "CopyVmState": True,
                                     "ExportDirectory": str(target)}),
            ("DestroyVirtualSystem", {"ComputerSystem": theirs_vm})):
        rv, out = wbemflow.invoke(conn, names.VSMS, method, **params)
        assert rv not in (ReturnCode.COMPLETED, ReturnCode.JOB_STARTED), (method, rv)
    assert list(target.iterdir()) == []
    # the other instance still has its VM, unchanged
    theirs = getattr(pair, other).connect().GetInstance(theirs_vm)
    assert theirs["EnabledState"] == 3


def _virsh(*args: str, stdin: str | None = None) -> str:
    res = subprocess.run(["virsh", "-c", QEMU_URI, *args], input=stdin, text=True,
                         capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout


def _adopt(state_dir: Path, *names_: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vsms.cli.main", "vm", "adopt", *names_,
                           "--state-dir", str(state_dir), "--libvirt-uri", QEMU_URI,
                           "--output", "json"], text=True, capture_output=True, timeout=120)


def test_virsh_domain_is_invisible_until_adopted_and_its_outside_disk_never_exported(
        pair: Pair, tmp_path: Path) -> None:
    """The attack's second half: a domain whose disk is B's (outside A's roots), adopted by A,
    exports from A with 32769 and a reason, and nothing is copied."""
    name = f"virsh-{pair.a.root.name}"
    uuid = new_guid()
    xml = tmp_path / "dom.xml"
    xml.write_text(f"""<domain type='qemu'><name>{name}</name><uuid>{uuid}</uuid>
      <memory unit='MiB'>64</memory><vcpu>1</vcpu>
      <os><type arch='x86_64' machine='pc'>hvm</type></os>
      <devices><disk type='file' device='disk'><driver name='qemu' type='vpc'/>
        <source file='{pair.disk_b}'/><target dev='hda' bus='ide'/></disk></devices>
    </domain>""")
    _virsh("define", str(xml))
    try:
        conn_a, conn_b = pair.a.connect(), pair.b.connect()
        for conn in (conn_a, conn_b):
            assert uuid not in _everything(conn).upper()
        res = _adopt(pair.a.served.state_dir, name)
        assert res.returncode == 0, res.stderr + res.stdout
        assert json.loads(res.stdout)[0]["kind"] == "unmanaged"
        vm = pywbem.CIMInstanceName(names.COMPUTER_SYSTEM, keybindings={
            "CreationClassName": names.COMPUTER_SYSTEM, "Name": uuid})
        assert conn_a.GetInstance(vm)["ElementName"] == name
        assert uuid not in _everything(conn_b).upper()  # B still does not see it
        audit = [json.loads(line) for line in
                 (pair.a.served.state_dir / "audit.log").read_text().splitlines()]
        adopted = [r for r in audit if r["event"] == "adopt"]
        assert [(r["domain"], r["guid"], r["kind"]) for r in adopted] == [
            (name, uuid, "unmanaged")]
        # B cannot adopt it away from A
        res = _adopt(pair.b.served.state_dir, name)
        assert res.returncode == 1 and "another vsms instance" in res.stdout + res.stderr
        # A's export of it: refused before any copy, with the reason
        target = pair.a.root / "exfil"
        target.mkdir()
        rv, out = wbemflow.invoke(conn_a, names.VSMS, "ExportVirtualSystem", ComputerSystem=vm,
                                  CopyVmState=True, ExportDirectory=str(target))
        assert rv == ReturnCode.ACCESS_DENIED
        assert "outside the storage roots" in out["ErrorDescription"]
        assert str(pair.disk_b) in out["ErrorDescription"]
        assert list(target.iterdir()) == []
    finally:
        subprocess.run(["virsh", "-c", QEMU_URI, "undefine", uuid], capture_output=True,
                       timeout=60)


def test_import_keeping_the_other_instances_guid_is_refused_without_details(
        pair: Pair) -> None:
    conn_a, conn_b = pair.a.connect(), pair.b.connect()
    export_dir = pair.a.root / "for-b"
    wbemflow.export(conn_a, pair.vm_a, export_dir)
    inner = pair.b.root / "incoming"  # the export, under a name that says nothing of it
    shutil.copytree(next(p for p in export_dir.iterdir() if p.is_dir()), inner)
    job = wbemflow.run_job(conn_b, names.VSMS, "ImportVirtualSystem",
                           ImportDirectory=str(inner), GenerateNewID=False)
    assert job["JobState"] == JobState.EXCEPTION
    text = job["ErrorDescription"]
    assert "already used by a virtual machine this service does not manage" in text
    assert "GenerateNewID TRUE" in text
    assert f"tenant-a-{pair.a.root.name}" not in text  # A's VM is not described
    assert str(pair.a.root) not in text
    assert guid(pair.vm_a) not in {guid(p) for p in
                                   conn_b.EnumerateInstanceNames(names.COMPUTER_SYSTEM)}
    # with a new GUID the same import works
    job = wbemflow.run_job(conn_b, names.VSMS, "ImportVirtualSystem",
                           ImportDirectory=str(inner), GenerateNewID=True)
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
