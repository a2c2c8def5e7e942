"""Instance IDs on the libvirt test driver: each VirtHost with an instance ID sees and manages
only its own domains; legacy and virsh-made domains are shown only once adopted."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from tests.virt.conftest import TEST_URI, Tracker, small_vm
from vsms.errors import InUse, InvalidParameter, NotFound
from vsms.model.vm import new_guid
from vsms.virt import domxml
from vsms.virt.adopt import instance_id
from vsms.virt.host import VirtHost

PLAIN = """<domain type='test'>
  <name>{name}</name><uuid>{uuid}</uuid><title>plain one</title>
  <memory unit='MiB'>96</memory><vcpu>2</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='{disk}'/><target dev='hda' bus='ide'/></disk>
    <disk type='file' device='disk'><driver name='qemu' type='{fmt2}'/>
      <source file='{disk2}'/><target dev='sdb' bus='scsi'/></disk>
    <disk type='file' device='cdrom'><target dev='hdc' bus='ide'/><readonly/></disk>
    <interface type='user'><mac address='52:54:00:12:34:56'/><model type='virtio'/></interface>
  </devices>
</domain>"""


def _conn() -> libvirt.virConnect:
    return libvirt.open(TEST_URI)


@pytest.fixture(autouse=True)
def driver() -> Iterator[libvirt.virConnect]:
    """A connection held for the whole test: the test driver forgets its domains when its
    last connection closes."""
    conn = _conn()
    yield conn
    conn.close()


def test_instance_id_is_made_once_and_kept(tmp_path: Path) -> None:
    first = instance_id(tmp_path)
    assert instance_id(tmp_path) == first
    path = tmp_path / "instance-id"
    assert os.stat(path).st_mode & 0o777 == 0o600
    path.write_text("not a guid\n")
    with pytest.raises(InvalidParameter, match="damaged"):
        instance_id(tmp_path)


def test_two_instances_do_not_see_or_touch_each_other(created: Tracker) -> None:
    with VirtHost(TEST_URI, instance=new_guid()) as a, \
            VirtHost(TEST_URI, instance=new_guid()) as b:
        vs = small_vm(created.new(), "belongs-to-a")
        a.define(vs)
        assert a.get_system(vs.guid) is not None
        assert vs.guid in {s.guid for s in a.list_systems()}
        # b: invisible everywhere, and every action answers "no such VM"
        assert b.get_system(vs.guid) is None
        assert vs.guid not in {s.guid for s in b.list_systems()}
        assert vs.guid not in b.states()
        assert vs.guid not in {v.guid for v, _ in b.inventory()}
        assert vs.guid not in b.paths_in_use().values()
        for act in (b.start, b.turn_off, b.undefine, b.state):
            with pytest.raises(NotFound, match="no virtual machine with this GUID"):
                act(vs.guid)
        # b cannot redefine (take over) a's VM, and the refusal names nothing of it
        with pytest.raises(InUse) as err:
            b.define(small_vm(vs.guid, "hijack"))
        assert "belongs-to-a" not in str(err.value)
        assert b.guid_taken(vs.guid) and not b.guid_taken(new_guid())
        # nor adopt it
        with pytest.raises(InUse, match="another vsms instance manages it"):
            b.adopt(vs.guid)
        assert a.get_system(vs.guid) is not None
        assert a.get_system(vs.guid).name == "belongs-to-a"  # type: ignore[union-attr]


def test_legacy_metadata_is_hidden_until_adopted(created: Tracker) -> None:
    vs = small_vm(created.new(), "from-old-vsms")
    conn = _conn()
    try:  # what a vsms from before instance IDs wrote: our metadata without an owner
        conn.defineXML(domxml.build(vs, vs.guid, "test"))
    finally:
        conn.close()
    me, other = new_guid(), new_guid()
    with VirtHost(TEST_URI, instance=me) as a, VirtHost(TEST_URI, instance=other) as b:
        for h in (a, b):
            assert h.get_system(vs.guid) is None
            assert vs.guid in h.unowned()
        done = a.adopt(vs.guid)
        assert (done.guid, done.kind) == (vs.guid, "unowned")
        assert a.get_system(vs.guid) is not None
        assert vs.guid not in a.unowned()
        assert a.adopt(vs.guid).kind == "ours"  # adopting again changes nothing
        b.get_system(vs.guid)
        assert b.get_system(vs.guid) is None
        with pytest.raises(InUse):
            b.adopt(vs.guid)


def test_virsh_domain_is_adopted_with_its_devices(created: Tracker, tmp_path: Path) -> None:
    guid = created.new()
    conn = _conn()
    try:
        conn.defineXML(PLAIN.format(name=f"plain-{guid[:8]}", uuid=guid,
                                    disk=tmp_path / "a.qcow2", disk2=tmp_path / "b.vhd",
                                    fmt2="vpc"))
    finally:
        conn.close()
    with VirtHost(TEST_URI, instance=new_guid()) as a:
        assert a.get_system(guid) is None
        with pytest.raises(NotFound, match="no libvirt domain"):
            a.adopt("no-such-domain-here")
        done = a.adopt(f"plain-{guid[:8]}")
        assert done.kind == "unmanaged"
        vs = a.get_system(guid)
        assert vs is not None
        assert (vs.name, vs.memory_mb, vs.processors) == ("plain one", 96, 2)
        assert sorted(m.path for m in vs.disk_media()) == [str(tmp_path / "a.qcow2"),
                                                          str(tmp_path / "b.vhd")]
        assert sorted(d.kind.value for d in vs.drives) == ["disk", "disk", "dvd"]
        assert [n.mac for n in vs.nics] == ["52:54:00:12:34:56"] and vs.nics[0].synthetic


def test_virsh_domain_with_a_raw_hard_disk_is_refused(created: Tracker) -> None:
    """vsms serves VHD, VHDX and qcow2 hard disks only: adopting a raw one is refused by name."""
    guid = created.new()
    conn = _conn()
    try:
        conn.defineXML(PLAIN.format(name=f"raw-{guid[:8]}", uuid=guid, disk="/x.qcow2",
                                    disk2="/y.img", fmt2="raw"))
    finally:
        conn.close()
    with VirtHost(TEST_URI, instance=new_guid()) as a:
        with pytest.raises(InvalidParameter, match=r"/y.img has format raw"):
            a.adopt(guid)
        assert a.get_system(guid) is None


def test_virsh_domain_vsms_cannot_represent_is_refused(created: Tracker) -> None:
    guid = created.new()
    xml = PLAIN.replace("dev='hda' bus='ide'", "dev='vda' bus='virtio'")
    conn = _conn()
    try:
        conn.defineXML(xml.format(name=f"virtio-{guid[:8]}", uuid=guid, disk="/x.qcow2",
                                  disk2="/y.img", fmt2="raw"))
    finally:
        conn.close()
    with VirtHost(TEST_URI, instance=new_guid()) as a:
        with pytest.raises(InvalidParameter, match="disk vda is on the virtio bus"):
            a.adopt(guid)
        assert a.get_system(guid) is None
    conn = _conn()
    try:
        assert "vsms" not in conn.lookupByUUIDString(guid).XMLDesc(0)
    finally:
        conn.close()


def test_adopt_command_unowned(created: Tracker, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    from vsms.auth.audit import AuditLog
    from vsms.cli.main import main

    vs = small_vm(created.new(), "old-one")
    conn = _conn()  # kept open: the test driver forgets its domains with its last connection
    conn.defineXML(domxml.build(vs, vs.guid, "test"))
    state = tmp_path / "state"
    args = ["vm", "adopt", "--unowned", "--state-dir", str(state), "--libvirt-uri", TEST_URI,
            "--output", "json"]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"name": vs.guid, "guid": vs.guid, "adopted": True, "kind": "unowned"} in rows
    with VirtHost(TEST_URI, instance=instance_id(state)) as mine:
        assert mine.get_system(vs.guid) is not None
    lines = [r for r in AuditLog(state / "audit.log").read() if r["guid"] == vs.guid]
    assert [(r["event"], r["source"], r["kind"]) for r in lines] == [
        ("adopt", "vsms vm adopt", "unowned")]
    assert main(["vm", "adopt", "--state-dir", str(state), "--libvirt-uri", TEST_URI]) == 2
    conn.close()
