"""VirtHost on libvirt's test:///default driver: definitions, metadata, cache, states, errors."""

from __future__ import annotations

import threading
import time
from copy import deepcopy
from pathlib import Path

import libvirt
import pytest

from tests.virt.conftest import TEST_URI, Tracker, small_vm
from tests.virt.test_domxml import full_vm
from vsms.cim.enums import EnabledState
from vsms.errors import (
    InUse,
    InvalidParameter,
    InvalidState,
    NotFound,
    NotSupported,
    OperationFailed,
    SystemNotAvailable,
)
from vsms.model.vm import DriveKind, ImageFormat, VirtualSystem
from vsms.virt import domxml as domxml_module
from vsms.virt.host import VirtHost

E = EnabledState


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def got(host: VirtHost, guid: str) -> VirtualSystem:
    vs = host.get_system(guid)
    assert vs is not None, f"VM {guid} is not listed"
    return vs


def raw_conn() -> libvirt.virConnect:
    return libvirt.open(TEST_URI)


def a_full_vm(created: Tracker):
    """The golden model with a new GUID, made valid: its VHDX disk and its raw disk become
    qcow2 (libvirt 9.0 has no vhdx disk format; see test_vhdx_is_refused_with_a_fix; a hard
    disk is VHD, VHDX or qcow2), and its name loses the line break (no control characters)."""
    vs = deepcopy(full_vm())
    vs.guid = created.new()
    vs.name = vs.name.replace("\n", " ")
    dvds = {d.dev_id for d in vs.drives if d.kind is DriveKind.DVD}
    for m in vs.media:
        if m.format is ImageFormat.VHDX or (m.format is ImageFormat.RAW
                                            and m.drive_id not in dvds):
            m.format = ImageFormat.QCOW2
    return vs


def test_define_get_list_undefine_round_trip(test_host: VirtHost, created: Tracker) -> None:
    vs = a_full_vm(created)
    test_host.define(vs)
    assert test_host.get_system(vs.guid) == vs
    assert test_host.get_system(vs.guid.lower()) == vs
    listed = [s for s in test_host.list_systems() if s.guid == vs.guid]
    assert listed == [vs]
    # a second host reads the same definition from libvirt alone
    with VirtHost(TEST_URI) as other:
        assert other.get_system(vs.guid) == vs
    dom = raw_conn().lookupByUUIDString(vs.guid)
    assert dom.name() == vs.guid
    test_host.undefine(vs.guid)
    assert test_host.get_system(vs.guid) is None
    assert vs.guid not in {s.guid for s in test_host.list_systems()}
    with pytest.raises(libvirt.libvirtError):
        raw_conn().lookupByUUIDString(vs.guid)


def test_returned_models_are_copies(test_host: VirtHost, created: Tracker) -> None:
    vs = small_vm(created.new())
    test_host.define(vs)
    copy = got(test_host, vs.guid)
    copy.name = "changed"
    copy.nics.clear()
    assert test_host.get_system(vs.guid) == vs


def test_define_replaces(test_host: VirtHost, created: Tracker) -> None:
    vs = small_vm(created.new())
    test_host.define(vs)
    vs.name, vs.memory_mb, vs.notes = "renamed", 128, "new notes"
    vs.nics[0].synthetic = False
    test_host.define(vs)
    assert test_host.get_system(vs.guid) == vs
    assert raw_conn().lookupByUUIDString(vs.guid).metadata(
        libvirt.VIR_DOMAIN_METADATA_TITLE, None) == "renamed"


def test_failed_define_keeps_previous_definition(test_host: VirtHost, created: Tracker,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    vs = small_vm(created.new())
    test_host.define(vs)
    changed = deepcopy(vs)
    changed.memory_mb = 512

    def refuse(self, xml):
        raise libvirt.libvirtError("injected: XML rejected")
    monkeypatch.setattr(libvirt.virConnect, "defineXML", refuse)
    with pytest.raises(OperationFailed, match="could not define virtual machine 'tiny'"):
        test_host.define(changed)
    monkeypatch.undo()
    assert test_host.get_system(vs.guid) == vs
    xml = raw_conn().lookupByUUIDString(vs.guid).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert "<memory unit='KiB'>65536</memory>" in xml


def test_vhdx_is_refused_with_a_fix(test_host: VirtHost, created: Tracker,
                                    tmp_path: Path) -> None:
    """libvirt 9.0 knows no vhdx disk format: define says so and names the fix. A libvirt
    that knows it must define the VM and keep the format."""
    vs = small_vm(created.new(), disk=tmp_path / "d.vhdx", disk_format=ImageFormat.VHDX)
    try:
        test_host.define(vs)
    except NotSupported as err:
        assert "cannot attach VHDX images" in str(err)
        assert "qemu-img convert -f vhdx -O qcow2" in str(err)
        assert test_host.get_system(vs.guid) is None
    else:
        assert libvirt.getVersion() > 9_000_000
        assert test_host.get_system(vs.guid) == vs


def test_invalid_model_defines_nothing(test_host: VirtHost, created: Tracker) -> None:
    vs = small_vm(created.new())
    vs.drives[0].address = 7
    with pytest.raises(InvalidParameter, match="slot 7"):
        test_host.define(vs)
    assert test_host.get_system(vs.guid) is None


def test_foreign_domains_are_ignored(test_host: VirtHost, created: Tracker) -> None:
    foreign = raw_conn().lookupByName("test")  # the test driver's own domain
    guid = foreign.UUIDString().upper()
    assert guid not in {s.guid for s in test_host.list_systems()}
    assert guid not in test_host.states()
    assert test_host.get_system(guid) is None
    with pytest.raises(NotFound, match="no virtual machine with this GUID"):
        test_host.state(guid)
    with pytest.raises(NotFound):
        test_host.turn_off(guid)
    vs = small_vm(guid)
    with pytest.raises(InUse, match="already used by a virtual machine this service does not "
                                    "manage"):
        test_host.define(vs)
    assert "vsms" not in foreign.XMLDesc(0)


def test_unknown_and_malformed_guids(test_host: VirtHost) -> None:
    assert test_host.get_system("nonsense") is None
    with pytest.raises(NotFound, match="not a GUID"):
        test_host.start("nonsense")
    with pytest.raises(NotFound, match="no virtual machine"):
        test_host.undefine("6F1C0E57-3B4E-4F55-9D6A-0E1F2A3B4C5D")


def test_states_and_transitions(test_host: VirtHost, created: Tracker) -> None:
    a, b, c = (small_vm(created.new(), n) for n in ("a", "b", "c"))
    for vs in (a, b, c):
        test_host.define(vs)
    test_host.start(a.guid)
    test_host.start(b.guid)
    test_host.pause(b.guid)
    test_host.start(c.guid)
    test_host.save(c.guid)
    mine = {g: s for g, s in test_host.states().items() if g in created.guids}
    assert mine == {a.guid: E.ENABLED, b.guid: E.PAUSED, c.guid: E.SUSPENDED}
    assert [test_host.state(v.guid) for v in (a, b, c)] == [E.ENABLED, E.PAUSED, E.SUSPENDED]
    test_host.resume(b.guid)
    test_host.reset(b.guid)
    assert test_host.state(b.guid) is E.ENABLED
    test_host.start(c.guid)  # restores the saved state
    assert test_host.state(c.guid) is E.ENABLED
    test_host.save(c.guid)
    test_host.discard_saved_state(c.guid)
    assert test_host.state(c.guid) is E.DISABLED
    test_host.start(c.guid)
    test_host.pause(c.guid)
    test_host.save(c.guid)  # saving a paused VM is allowed
    test_host.turn_off(c.guid)  # from saved: discards the saved state
    assert test_host.state(c.guid) is E.DISABLED
    test_host.turn_off(a.guid)
    assert test_host.state(a.guid) is E.DISABLED


@pytest.mark.parametrize(("setup", "action", "message"), [
    ([], "pause", "cannot pause VM 'x' (GUID): it is turned off; only a running VM"),
    ([], "resume", "it is turned off; only a paused VM can be resumed"),
    ([], "save", "it is turned off; only a running or paused VM can be saved"),
    ([], "reset", "it is turned off; only a running VM can be reset"),
    ([], "turn_off", "cannot turn off VM 'x' (GUID): it is turned off"),
    ([], "discard_saved_state", "it is turned off; only a saved VM has one"),
    (["start"], "start", "cannot start VM 'x' (GUID): it is running"),
    (["start"], "resume", "it is running; only a paused VM"),
    (["start", "pause"], "pause", "it is paused; only a running VM"),
    (["start", "pause"], "start", "it is paused"),
    (["start", "pause"], "reset", "it is paused"),
    (["start", "save"], "pause", "it is saved (its memory is on disk)"),
    (["start", "save"], "save", "it is saved"),
])
def test_invalid_transitions(test_host: VirtHost, created: Tracker, setup, action,
                             message) -> None:
    vs = small_vm(created.new(), "x")
    test_host.define(vs)
    for step in setup:
        getattr(test_host, step)(vs.guid)
    before = test_host.state(vs.guid)
    with pytest.raises(InvalidState) as info:
        getattr(test_host, action)(vs.guid)
    assert message.replace("GUID", vs.guid) in str(info.value)
    assert test_host.state(vs.guid) is before


def test_undefine_turns_off_and_drops_saved_state(test_host: VirtHost,
                                                  created: Tracker) -> None:
    running, saved = small_vm(created.new()), small_vm(created.new())
    for vs in (running, saved):
        test_host.define(vs)
        test_host.start(vs.guid)
    test_host.save(saved.guid)
    for vs in (running, saved):
        test_host.undefine(vs.guid)
        with pytest.raises(libvirt.libvirtError):
            raw_conn().lookupByUUIDString(vs.guid)


def test_listing_does_not_reparse(test_host: VirtHost, created: Tracker,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    vms = [small_vm(created.new(), f"vm{i}") for i in range(4)]
    for vs in vms:
        test_host.define(vs)
    parsed: list[str] = []
    real_parse = domxml_module.parse

    def spy(xml: str):
        parsed.append(xml)
        return real_parse(xml)
    monkeypatch.setattr(domxml_module, "parse", spy)
    # our own defines also come back as events, each re-read once: let them settle
    last = -1
    deadline = time.monotonic() + 5
    while len(parsed) != last and time.monotonic() < deadline:
        last = len(parsed)
        time.sleep(0.2)
        test_host.list_systems()
    parsed.clear()
    for _ in range(3):
        test_host.list_systems()
        test_host.states()
        test_host.get_system(vms[0].guid)
        test_host.state(vms[1].guid)
    assert parsed == []


def test_changes_made_outside_vsms_are_seen(test_host: VirtHost, created: Tracker) -> None:
    vs = small_vm(created.new(), "outside")
    test_host.define(vs)
    assert got(test_host, vs.guid).memory_mb == 64
    conn = raw_conn()
    xml = conn.lookupByUUIDString(vs.guid).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    conn.defineXML(xml.replace("<memory unit='KiB'>65536</memory>",
                               "<memory unit='KiB'>262144</memory>"))  # like 'virsh edit'
    assert wait_until(lambda: got(test_host, vs.guid).memory_mb == 256)
    # a copy defined by hand under a new UUID is ours too (it carries our metadata)
    copy_guid = created.new()
    conn.defineXML(xml.replace(vs.guid, copy_guid).replace(vs.guid.lower(), copy_guid.lower()))
    assert wait_until(lambda: copy_guid in {s.guid for s in test_host.list_systems()})
    conn.lookupByUUIDString(vs.guid).undefine()
    assert wait_until(lambda: test_host.get_system(vs.guid) is None)
    assert vs.guid not in {s.guid for s in test_host.list_systems()}


def test_damaged_metadata_is_not_listed_but_can_be_redefined(test_host: VirtHost,
                                                            created: Tracker) -> None:
    vs = small_vm(created.new(), "damaged")
    test_host.define(vs)
    conn = raw_conn()
    xml = conn.lookupByUUIDString(vs.guid).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    conn.defineXML(xml.replace('schema="1"', 'schema="99"'))
    assert wait_until(lambda: test_host.get_system(vs.guid) is None)
    assert vs.guid not in {s.guid for s in test_host.list_systems()}
    assert test_host.state(vs.guid) is E.DISABLED  # still ours, still manageable
    test_host.define(vs)
    assert test_host.get_system(vs.guid) == vs


def test_paths_in_use_are_real_paths(test_host: VirtHost, created: Tracker,
                                     tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    vs = small_vm(created.new(), disk=tmp_path / "link" / "d.vhd")
    test_host.define(vs)
    paths = test_host.paths_in_use()
    assert paths[str(real / "d.vhd")] == vs.guid
    assert str(tmp_path / "link" / "d.vhd") not in paths


def test_images_and_macs_in_use_follow_every_change(test_host: VirtHost, created: Tracker,
                                                   tmp_path: Path) -> None:
    a = small_vm(created.new(), disk=tmp_path / "a.vhd")
    b = small_vm(created.new(), disk=tmp_path / "b.vhd")
    test_host.define(a)
    test_host.define(b)
    mac_a, mac_b = a.nics[0].mac.upper(), b.nics[0].mac.upper()
    assert test_host.paths_in_use()[str(tmp_path / "a.vhd")] == a.guid
    assert {mac_a, mac_b} <= test_host.macs_in_use()
    # our own redefinition moves the disk and changes the MAC
    a.media[0].path = str(tmp_path / "a2.vhd")
    a.nics[0].mac = "00:15:5D:AA:BB:CC"
    test_host.define(a)
    paths, macs = test_host.paths_in_use(), test_host.macs_in_use()
    assert str(tmp_path / "a.vhd") not in paths and paths[str(tmp_path / "a2.vhd")] == a.guid
    assert mac_a not in macs and "00:15:5D:AA:BB:CC" in macs
    # someone else's change (another connection, as virsh would) is seen through the events
    conn = raw_conn()
    xml = conn.lookupByUUIDString(b.guid).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    conn.defineXML(xml.replace(str(tmp_path / "b.vhd"), str(tmp_path / "b-moved.vhd")))
    assert wait_until(lambda: str(tmp_path / "b-moved.vhd") in test_host.paths_in_use())
    assert str(tmp_path / "b.vhd") not in test_host.paths_in_use()
    conn.lookupByUUIDString(b.guid).undefine()
    assert wait_until(lambda: mac_b not in test_host.macs_in_use())
    assert str(tmp_path / "b-moved.vhd") not in test_host.paths_in_use()
    test_host.undefine(a.guid)
    assert str(tmp_path / "a2.vhd") not in test_host.paths_in_use()
    assert "00:15:5D:AA:BB:CC" not in test_host.macs_in_use()


def test_concurrent_readers_and_writers(test_host: VirtHost, created: Tracker) -> None:
    guids = [created.new() for _ in range(6)]
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                test_host.list_systems()
                test_host.states()
                test_host.paths_in_use()
            except BaseException as exc:
                errors.append(exc)

    def writer(guid: str) -> None:
        try:
            for _ in range(3):
                test_host.define(small_vm(guid))
                test_host.start(guid)
                test_host.turn_off(guid)
                test_host.undefine(guid)
            test_host.define(small_vm(guid))
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=reader) for _ in range(3)]
    writers = [threading.Thread(target=writer, args=(g,)) for g in guids]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join(timeout=60)
    stop.set()
    for t in readers:
        t.join(timeout=10)
    assert errors == []
    assert set(guids) <= {s.guid for s in test_host.list_systems()}
    assert {g: s for g, s in test_host.states().items() if g in guids} == \
        dict.fromkeys(guids, E.DISABLED)


def test_domain_type_auto_and_invalid(created: Tracker) -> None:
    with pytest.raises(InvalidParameter, match="domain type 'xen' is not supported"):
        VirtHost(TEST_URI, "xen")
    with VirtHost(TEST_URI, "auto") as host:
        vs = small_vm(created.new())
        host.define(vs)
        xml = raw_conn().lookupByUUIDString(vs.guid).XMLDesc(0)
        assert xml.startswith("<domain type='qemu'")  # the test driver offers no kvm


def test_unreachable_daemon_is_reported(tmp_path: Path) -> None:
    uri = f"qemu+unix:///system?socket={tmp_path}/absent.sock"
    with pytest.raises(SystemNotAvailable) as info:
        VirtHost(uri)
    text = str(info.value)
    assert f"libvirt at {uri} is unreachable" in text and "start libvirtd" in text


def test_closed_host_refuses_calls() -> None:
    host = VirtHost(TEST_URI)
    host.close()
    host.close()
    with pytest.raises(SystemNotAvailable, match="closed"):
        host.list_systems()
