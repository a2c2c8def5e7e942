"""Export and import WITH the snapshot tree (issue 13 item 5) on qemu:///system, real qemu-img
and qemu-io: one VM with a small tree (S1 → S2, S1 → S3) made once for the module, exported with
CopySnapshotConfiguration 0 / 1 / 2 and imported with new and same IDs, in place and as a copy;
each imported tree is checked by its CIM view (names, parents, Previous, LastApplied) and by the
disks' contents after applying each snapshot; the refusals (a running VM, a chain that leads
outside the storage roots)."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
import pywbem

from tests.conftest import QEMU_URI, fresh_dir
from tests.lifecycle.service import Harness, running_service
from tests.lifecycle.test_qemu_lifecycle import change_state
from tests.snapshots.test_snapshots import (
    current_disk,
    ok_job,
    qcow2_vm,
    reads,
    save_copy,
    snapshot,
    vm_with_disk,
    write,
)
from vsms.cim import names
from vsms.cim.embedded import serialize_instance
from vsms.cim.enums import ReturnCode
from vsms.disks import qemuimg
from vsms.exportdir import writer
from vsms.exportdir.reader import read_export
from vsms.mapping import ids
from vsms.model.vm import ImageFormat
from vsms.operations.snapshot_disks import snapshot_dir
from vsms.wbem.dispatch import Dispatcher
from vsms.wsman.handler import WsmanHandler

pytestmark = pytest.mark.qemu


@dataclass
class Tree:
    svc: Harness
    root: Path
    vm: pywbem.CIMInstanceName
    name: str
    snaps: dict[str, pywbem.CIMInstance]  # S1, S2, S3
    copies: dict[str, Path]  # what each snapshot and the current state read (raw)
    marks: dict[str, list[str]]  # the source's Previous / LastApplied, as creation times


@pytest.fixture(scope="module")
def tree() -> Iterator[Tree]:
    """A VM on a VHD: write A → S1 → write B → S2 → write C → apply S1 → write D → S3 → write
    E. S1 holds A, S2 B, S3 D; the VM reads E; Previous is S3, LastApplied S1."""
    root = fresh_dir()
    tmp = root / "copies"
    tmp.mkdir()
    try:
        with running_service(root, root / "state", QEMU_URI) as svc:
            name = f"snapx-{uuid.uuid4().hex[:8]}"
            vm, _ = vm_with_disk(svc, root, name)
            copies: dict[str, Path] = {}
            snaps: dict[str, pywbem.CIMInstance] = {}
            for label, byte in (("S1", 0x41), ("S2", 0x42)):
                write(svc, vm, byte)
                copies[label] = save_copy(svc, vm, tmp / f"{label}.raw")
                snaps[label] = snapshot(svc, vm)
            write(svc, vm, 0x43)
            ok_job(svc, *svc.vsms("ApplyVirtualSystemSnapshotEx", ComputerSystem=vm,
                                  SnapshotSettingData=snaps["S1"].path))
            write(svc, vm, 0x44, 1)
            copies["S3"] = save_copy(svc, vm, tmp / "S3.raw")
            snaps["S3"] = snapshot(svc, vm)
            write(svc, vm, 0x45, 2)
            copies["now"] = save_copy(svc, vm, tmp / "now.raw")
            yield Tree(svc, root, vm, name, snaps, copies, marks(svc, vm))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def marks(svc: Harness, vm: pywbem.CIMInstanceName) -> dict[str, list[str]]:
    return {a: [str(s["CreationTime"]) for s in svc.associators(vm, assoc_class=a)]
            for a in ("Msvm_PreviousSettingData", "Msvm_LastAppliedSettingData")}


def esd(mode: int, *, storage: bool = True, snapshot: str | None = None) -> str:
    props: dict[str, object] = {
        "CopyVmStorage": storage, "CopyVmRuntimeInformation": False,
        "CreateVmExportSubdirectory": True, "CopySnapshotConfiguration": pywbem.Uint8(mode)}
    if snapshot is not None:
        props["SnapshotVirtualSystem"] = snapshot
    return serialize_instance(pywbem.CIMInstance(names.EXPORT_SD, properties=props))


def export(t: Tree, folder: str, mode: int, vm: pywbem.CIMInstanceName | None = None,
           **kw: object) -> Path:
    target = t.root / folder
    target.mkdir()
    ok_job(t.svc, *t.svc.vsms("ExportVirtualSystemEx", ComputerSystem=vm or t.vm,
                              ExportDirectory=str(target),
                              ExportSettingData=esd(mode, **kw)))  # type: ignore[arg-type]
    (sub,) = target.iterdir()
    assert subprocess.run(["sha256sum", "--strict", "--quiet", "-c", "manifest.sha256"],
                          cwd=sub, timeout=60).returncode == 0
    return sub


def import_(t: Tree, directory: Path, *, new_id: bool, copy: bool,
            target: Path | None = None, notes: list[str] | None = None
            ) -> pywbem.CIMInstanceName:
    props: dict[str, object] = {"GenerateNewId": new_id, "CreateCopy": copy}
    if target is not None:
        props["TargetVhdDataRoot"] = str(target)
    isd = serialize_instance(pywbem.CIMInstance(names.IMPORT_SD, properties=props))
    rv, out = t.svc.vsms("ImportVirtualSystemEx", ImportDirectory=str(directory),
                         ImportSettingData=isd)
    job = ok_job(t.svc, rv, out)
    assert job.path is not None
    if notes is not None:
        notes.append(str(job["Description"]))
    (vm,) = t.svc.associators(job.path, assoc_class=names.AFFECTED_JOB_ELEMENT,
                              result_class=names.COMPUTER_SYSTEM)
    assert vm.path is not None
    t.svc.defined.append(str(vm.path["Name"]))
    return vm.path


def tree_view(t: Tree, vm: pywbem.CIMInstanceName) -> dict[str, tuple[str, str]]:
    """Each snapshot of ``vm`` by CreationTime (names can repeat within a second): (its
    parent's CreationTime or "", its InstanceID)."""
    snaps = t.svc.associators(vm, assoc_class=names.ELEMENT_SETTING_DATA,
                              result_class=names.VSSD)
    snaps = [s for s in snaps if s["SettingType"] == 5]
    by_ref = {ids.ref_text(names.VSSD, s["InstanceID"]): str(s["CreationTime"]) for s in snaps}
    return {str(s["CreationTime"]): (by_ref.get(s["Parent"], "") if s["Parent"] else "",
                                     s["InstanceID"]) for s in snaps}


def check_tree(t: Tree, vm: pywbem.CIMInstanceName, *, same_ids: bool) -> None:
    """The imported VM has the tree (names, parents, Previous, LastApplied), reads E now and
    each snapshot's content once applied."""
    when = {k: str(v["CreationTime"]) for k, v in t.snaps.items()}
    view = tree_view(t, vm)
    assert {k: v[0] for k, v in view.items()} == {
        when["S1"]: "", when["S2"]: when["S1"], when["S3"]: when["S1"]}
    own = {k: view[when[k]][1] for k in when}
    assert (own == {k: v["InstanceID"] for k, v in t.snaps.items()}) is same_ids
    if not same_ids:
        assert not set(own.values()) & {v["InstanceID"] for v in t.snaps.values()}
    for k, v in t.snaps.items():
        assert t.svc.get(ids.setting_path(names.VSSD, own[k]))["ElementName"] == v["ElementName"]
    assert marks(t.svc, vm) == t.marks
    assert t.marks["Msvm_PreviousSettingData"] == [when["S3"]]
    # each snapshot's RASDs name the VM's device ids under its own InstanceID
    parts = t.svc.associators(ids.setting_path(names.VSSD, own["S2"]),
                              assoc_class=names.VSSD_COMPONENT)
    assert parts and all(str(p["InstanceID"]).startswith(own["S2"] + "\\") for p in parts)
    assert reads(t.svc, vm, t.copies["now"])
    for label in ("S2", "S1", "S3"):
        ok_job(t.svc, *t.svc.vsms("ApplyVirtualSystemSnapshotEx", ComputerSystem=vm,
                                  SnapshotSettingData=ids.setting_path(names.VSSD, own[label])))
        assert reads(t.svc, vm, t.copies[label]), label


def standalone(path: Path) -> bool:
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", "-f", "vpc",
                                      str(path)], capture_output=True, text=True,
                                     check=True, timeout=60).stdout)
    return "backing-filename" not in info


def test_export_all_then_import_copy_and_in_place(tree: Tree) -> None:
    """CopySnapshotConfiguration 0: every snapshot's settings, every image of every chain
    (backing references relative inside the export, format named), listed in config.xml and
    the manifest; imported as a copy with new IDs while the source VM still exists, then in
    place with the same IDs once it is gone: the same tree and contents each time."""
    t = tree
    exp = export(t, "all", 0)
    snaps = sorted(p.name for p in (exp / "Snapshots").iterdir())
    assert snaps == sorted(f"{s['InstanceID'][10:]}.exp" for s in t.snaps.values())
    vhds = sorted((exp / "Virtual Hard Disks").iterdir())
    pkg = read_export(exp)
    assert sorted(i.file for i in pkg.config.images) == [
        f"Virtual Hard Disks/{p.name}" for p in vhds]
    for image in pkg.config.images:  # a relative name inside the folder, format recorded
        info = json.loads(subprocess.run(
            ["qemu-img", "info", "-U", "--output=json", "-f", image.format.value,
             str(exp / image.file)], capture_output=True, text=True, check=True,
            timeout=60).stdout)
        if image.backing:
            assert "/" not in info["backing-filename"]
            assert info["backing-filename-format"] == image.backing_format
    # the VHD (A, S1's), the overlay of B (S2's), of D (S3's) and of E (the VM's); C's was
    # discarded when S1 was applied
    assert len(vhds) == 4
    assert {s.id for s in pkg.config.snapshots} == {s["InstanceID"][10:] for s in
                                                    t.snaps.values()}
    rv, out = t.svc.vsms("GetVirtualSystemImportSettingData", ImportDirectory=str(exp))
    assert rv == ReturnCode.COMPLETED and out["ImportSettingData"]["Name"] == t.name
    copy_root = t.root / "copied"
    copy_root.mkdir()
    vm = import_(t, exp, new_id=True, copy=True, target=copy_root)
    path, _ = current_disk(t.svc, vm)
    new = t.svc.host.get_system(str(vm["Name"]))
    assert new is not None  # the copied overlays are in the new VM's own snapshot folder
    overlay_dir = Path(snapshot_dir(new))
    assert Path(path).parent == overlay_dir and overlay_dir.name == vm["Name"]
    check_tree(t, vm, same_ids=False)
    # the copied overlays are the new VM's own: removing its tree merges them all back into
    # the copied VHD, which then reads what S3 held (the last snapshot applied)
    assert len(list(overlay_dir.iterdir())) == 3
    s1 = next(s for s in t.svc.associators(vm, assoc_class=names.ELEMENT_SETTING_DATA,
                                          result_class=names.VSSD)
              if s["SettingType"] == 5 and s["Parent"] is None)
    ok_job(t.svc, *t.svc.vsms("RemoveVirtualSystemSnapshotTree", SnapshotSettingData=s1.path))
    assert current_disk(t.svc, vm) == (str(copy_root / f"{t.name}.vhd"), ImageFormat.VHD)
    assert reads(t.svc, vm, t.copies["S3"]) and list(overlay_dir.iterdir()) == []
    # the export stays reusable (copy); the source VM gone, the same IDs import in place
    ok_job(t.svc, *t.svc.vsms("DestroyVirtualSystem", ComputerSystem=t.vm))
    again = import_(t, exp, new_id=False, copy=False)
    assert again["Name"] == t.vm["Name"]
    path, _ = current_disk(t.svc, again)
    assert Path(path).parent == exp / "Virtual Hard Disks"
    check_tree(t, again, same_ids=True)
    t.vm = again  # the module's VM from now on (same ID, same tree)


def test_export_none_and_one(tree: Tree) -> None:
    """CopySnapshotConfiguration 1: the current state only, flattened into one standalone VHD;
    2: snapshot S2's state as the VM, its disk merged into a standalone VHD (storage flags
    ignored); each imports and reads what it should, without snapshots."""
    t = tree
    # the module's VM: after the previous test it is the in-place import, last applied S3
    ok_job(t.svc, *t.svc.vsms("ApplyVirtualSystemSnapshotEx", ComputerSystem=t.vm,
                              SnapshotSettingData=t.snaps["S2"].path))
    for mode, folder, expect in ((1, "none", "S2"), (2, "one", "S1")):
        kw: dict[str, object] = {}
        if mode == 2:
            kw = {"snapshot": ids.ref_text(names.VSSD, t.snaps["S1"]["InstanceID"]),
                  "storage": False}
        exp = export(t, folder, mode, **kw)
        assert list((exp / "Snapshots").iterdir()) == []
        (vhd,) = (exp / "Virtual Hard Disks").iterdir()
        assert vhd.suffix == ".vhd" and standalone(vhd)
        pkg = read_export(exp)
        assert not pkg.config.snapshots and not pkg.config.images
        vm = import_(t, exp, new_id=True, copy=False)
        assert tree_view(t, vm) == {}
        assert current_disk(t.svc, vm)[1] is ImageFormat.VHD
        assert reads(t.svc, vm, t.copies[expect]), folder
    # configuration only: the tree and the images' paths recorded, nothing copied; importing
    # it in place would share the module VM's disks: refused
    exp = export(t, "config", 0, storage=False)
    assert list((exp / "Virtual Hard Disks").iterdir()) == []
    pkg = read_export(exp)
    assert len(pkg.config.snapshots) == 3 and len(pkg.snapshot_instances) == 3
    assert pkg.config.images and all(i.file == "" and Path(i.original_path).is_file()
                                     for i in pkg.config.images)
    rv, out = t.svc.vsms("ImportVirtualSystem", ImportDirectory=str(exp), GenerateNewID=True)
    job = t.svc.wait(out["Job"])
    assert job["JobState"] != 7 and "already used" in job["ErrorDescription"]


def test_memory_state_carried_with_the_same_id(tree: Tree) -> None:
    """A snapshot of a running VM on qcow2 holds its memory state: the export carries it
    (Snapshots/<GUID>.save); imported with new IDs the snapshot is disk-only (the job says so;
    applied, the VM is off); imported with the same ID it applies as Suspended and resumes."""
    t = tree
    vm, _ = qcow2_vm(t.svc, t.root)
    change_state(t.svc, vm, 2)
    try:
        snap = snapshot(t.svc, vm)
    finally:
        change_state(t.svc, vm, 3)
    sid = str(snap["InstanceID"])[10:]
    exp = export(t, "memory", 0, vm=vm)
    assert (exp / "Snapshots" / f"{sid}.save").is_file()
    notes: list[str] = []
    target = t.root / "memory-copy"
    target.mkdir()
    copy = import_(t, exp, new_id=True, copy=True, target=target, notes=notes)
    assert "without its memory state" in notes[0], notes
    (own,) = [k for k in tree_view(t, copy).values()]
    ok_job(t.svc, *t.svc.vsms("ApplyVirtualSystemSnapshotEx", ComputerSystem=copy,
                              SnapshotSettingData=ids.setting_path(names.VSSD, own[1])))
    assert t.svc.get(copy)["EnabledState"] == 3
    ok_job(t.svc, *t.svc.vsms("DestroyVirtualSystem", ComputerSystem=vm))
    same = import_(t, exp, new_id=False, copy=False)
    ok_job(t.svc, *t.svc.vsms("ApplyVirtualSystemSnapshotEx", ComputerSystem=same,
                              SnapshotSettingData=snap.path))
    assert t.svc.get(same)["EnabledState"] == 32769  # Suspended: the memory state is back
    change_state(t.svc, same, 2)
    try:
        assert t.svc.get(same)["EnabledState"] == 2
    finally:
        change_state(t.svc, same, 3)


def test_refusals(tree: Tree) -> None:
    """A running VM: 32775 as for other exports; an overlay whose backing file leads outside
    the storage roots: 32769 naming it; SnapshotVirtualSystem of no snapshot of the VM: 32773;
    nothing written each time."""
    t = tree
    target = t.root / "refused"
    target.mkdir()

    def try_export(mode: int = 0, **kw: object) -> int:
        rv, _ = t.svc.vsms("ExportVirtualSystemEx", ComputerSystem=t.vm,
                           ExportDirectory=str(target),
                           ExportSettingData=esd(mode, **kw))  # type: ignore[arg-type]
        return int(rv)

    unknown = ids.ref_text(names.VSSD, f"Microsoft:{str(uuid.uuid4()).upper()}")
    assert try_export(2, snapshot=unknown) == ReturnCode.INVALID_PARAMETER
    path, _ = current_disk(t.svc, t.vm)
    parent = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", "-f",
                                        "qcow2", path], capture_output=True, text=True,
                                       check=True, timeout=60).stdout)
    outside = fresh_dir() / "base.qcow2"
    try:
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(outside), "16M"],
                       check=True, timeout=60)
        subprocess.run(["qemu-img", "rebase", "-u", "-f", "qcow2", "-b", str(outside), "-F",
                        "qcow2", path], check=True, timeout=60)
        assert try_export() == ReturnCode.ACCESS_DENIED
    finally:
        subprocess.run(["qemu-img", "rebase", "-u", "-f", "qcow2", "-b",
                        parent["backing-filename"], "-F", parent["backing-filename-format"],
                        path], check=True, timeout=60)
        shutil.rmtree(outside.parent, ignore_errors=True)
    assert qemuimg.check(path, ImageFormat.QCOW2) is None
    # an export whose frozen overlay was re-pointed outside it (manifest made to match): the
    # import names the image and what it builds on, and imports nothing
    bad = t.root / "tampered"
    shutil.copytree(t.root / "all" / t.name, bad)
    pkg = read_export(bad)
    frozen = next(i for i in pkg.config.images if i.backing and i.file not in
                  {d.file for d in pkg.config.disks})
    subprocess.run(["qemu-img", "rebase", "-u", "-f", "qcow2", "-b", "/var/tmp/elsewhere.vhd",
                    "-F", "vpc", str(bad / frozen.file)], check=True, timeout=60)
    writer.write_manifest(bad)
    before = {vm["Name"] for vm in t.svc.registry.enumerate_instances(
        names.NAMESPACE, names.COMPUTER_SYSTEM)}
    rv, out = t.svc.vsms("ImportVirtualSystem", ImportDirectory=str(bad), GenerateNewID=True)
    job = t.svc.wait(out["Job"])
    assert job["JobState"] != 7 and frozen.file in job["ErrorDescription"]
    assert "builds on" in job["ErrorDescription"], job["ErrorDescription"]
    assert {vm["Name"] for vm in t.svc.registry.enumerate_instances(
        names.NAMESPACE, names.COMPUTER_SYSTEM)} == before
    change_state(t.svc, t.vm, 2)
    try:
        assert try_export() == ReturnCode.INVALID_STATE
    finally:
        change_state(t.svc, t.vm, 3)
    assert list(target.iterdir()) == []


def test_export_all_over_wsman(tree: Tree) -> None:
    """ExportVirtualSystemEx with CopySnapshotConfiguration 0 through the WS-Man handler (an
    EPR and an embedded instance, as WinRM clients send them): the job exports the tree."""
    t = tree
    target = t.root / "wsman"
    target.mkdir()
    wmi = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/"
    uri = wmi + names.VSMS
    svc = t.svc.vsms_path()
    sel = "".join(f'<wsman:Selector Name="{k}">{v}</wsman:Selector>'
                  for k, v in svc.keybindings.items())
    vm_sel = "".join(f'<wsman:Selector Name="{k}">{v}</wsman:Selector>'
                     for k, v in t.vm.keybindings.items())
    epr = ("<wsa:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
           f"</wsa:Address><wsa:ReferenceParameters><wsman:ResourceURI>{wmi}"
           f"{names.COMPUTER_SYSTEM}</wsman:ResourceURI><wsman:SelectorSet>{vm_sel}"
           "</wsman:SelectorSet></wsa:ReferenceParameters>")
    body = (f'<p:ExportVirtualSystemEx_INPUT xmlns:p="{uri}"><p:ComputerSystem>{epr}'
            f"</p:ComputerSystem><p:ExportDirectory>{target}</p:ExportDirectory>"
            f"<p:ExportSettingData>{escape(esd(0))}</p:ExportSettingData>"
            "</p:ExportVirtualSystemEx_INPUT>")
    env = ('<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
           'xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
           'xmlns:wsman="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header>'
           f'<wsa:Action s:mustUnderstand="true">{uri}/ExportVirtualSystemEx</wsa:Action>'
           "<wsa:MessageID>uuid:11111111-2222-3333-4444-555555555555</wsa:MessageID>"
           "<wsa:ReplyTo><wsa:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/"
           "anonymous</wsa:Address></wsa:ReplyTo>"
           f'<wsman:ResourceURI s:mustUnderstand="true">{uri}</wsman:ResourceURI>'
           f"<wsman:SelectorSet>{sel}</wsman:SelectorSet></s:Header>"
           f"<s:Body>{body}</s:Body></s:Envelope>")
    handler = WsmanHandler(Dispatcher(t.svc.registry, "localhost"))
    reply = handler.handle("POST", {":path": "/wsman",
                                    "content-type": "application/soap+xml;charset=UTF-8"},
                           env.encode())
    text = reply.body.decode()
    assert reply.status == 200, text
    assert "ExportVirtualSystemEx_OUTPUT" in text and ">4096</" in text, text
    jobs = [j for j in t.svc.registry.enumerate_instances(names.NAMESPACE, names.CONCRETE_JOB)
            if str(target) in j["Description"]]
    assert len(jobs) == 1
    ok_job(t.svc, ReturnCode.JOB_STARTED, {"Job": jobs[0].path})
    (exp,) = target.iterdir()
    assert len(list((exp / "Snapshots").glob("*.exp"))) == 3
    assert len(read_export(exp).config.snapshots) == 3
