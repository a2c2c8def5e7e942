"""VirtHost on qemu:///system with real QEMU (TCG): life cycle, disks, states, reconnection."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import libvirt
import pytest

from tests.virt.conftest import Tracker, make_image, small_vm
from tests.virt.proxy import LibvirtProxy
from vsms.cim.enums import EnabledState
from vsms.errors import InvalidState, NotSupported, SystemNotAvailable
from vsms.model.vm import Drive, DriveKind, ImageFormat, Media, new_guid
from vsms.virt import cache
from vsms.virt.host import VirtHost

pytestmark = pytest.mark.qemu
E = EnabledState


def live_xml(uri: str, guid: str) -> str:
    conn = libvirt.open(uri)
    try:
        return str(conn.lookupByUUIDString(guid).XMLDesc(0))
    finally:
        conn.close()


def test_life_cycle_with_a_dynamic_vhd(qemu_host: VirtHost, qemu_created: Tracker,
                                       storage_root: Path, qemu_uri: str) -> None:
    disk = make_image(storage_root / "boot.vhd", "vpc", "32M", "-o", "subformat=dynamic")
    vs = small_vm(qemu_created.new(), "life", disk=disk)
    qemu_host.define(vs)
    assert qemu_host.get_system(vs.guid) == vs
    assert qemu_host.state(vs.guid) is E.DISABLED
    qemu_host.start(vs.guid)
    assert qemu_host.state(vs.guid) is E.ENABLED
    xml = live_xml(qemu_uri, vs.guid)
    assert "type='vpc'" in xml and "<link state='down'/>" in xml and "device='cdrom'" in xml
    qemu_host.pause(vs.guid)
    assert qemu_host.state(vs.guid) is E.PAUSED
    qemu_host.resume(vs.guid)
    assert qemu_host.state(vs.guid) is E.ENABLED
    qemu_host.reset(vs.guid)
    assert qemu_host.state(vs.guid) is E.ENABLED
    # QEMU blocks migration (and so a memory save) for vpc images: a clear refusal
    with pytest.raises(NotSupported, match="VHD or VHDX") as info:
        qemu_host.save(vs.guid)
    assert "turn the VM off instead" in str(info.value)
    assert qemu_host.state(vs.guid) is E.ENABLED
    with pytest.raises(InvalidState, match="it is running"):
        qemu_host.start(vs.guid)
    qemu_host.turn_off(vs.guid)
    assert qemu_host.state(vs.guid) is E.DISABLED
    with pytest.raises(InvalidState, match="it is turned off; only a running VM can be paused"):
        qemu_host.pause(vs.guid)
    assert qemu_host.paths_in_use()[os.path.realpath(disk)] == vs.guid
    qemu_host.undefine(vs.guid)
    assert qemu_host.get_system(vs.guid) is None
    assert disk.exists()  # undefine never deletes disks


def test_save_and_restore_with_qcow2(qemu_host: VirtHost, qemu_created: Tracker,
                                     storage_root: Path) -> None:
    disk = make_image(storage_root / "boot.qcow2", "qcow2", "32M")
    vs = small_vm(qemu_created.new(), "saver", disk=disk, disk_format=ImageFormat.QCOW2)
    qemu_host.define(vs)
    qemu_host.start(vs.guid)
    qemu_host.save(vs.guid)
    assert qemu_host.state(vs.guid) is E.SUSPENDED
    assert qemu_host.states()[vs.guid] is E.SUSPENDED
    qemu_host.start(vs.guid)  # restores the saved memory
    assert qemu_host.state(vs.guid) is E.ENABLED
    qemu_host.pause(vs.guid)
    qemu_host.save(vs.guid)
    assert qemu_host.state(vs.guid) is E.SUSPENDED
    with pytest.raises(InvalidState, match="it is saved"):
        qemu_host.resume(vs.guid)
    qemu_host.turn_off(vs.guid)  # from saved: the saved state is discarded
    assert qemu_host.state(vs.guid) is E.DISABLED
    qemu_host.start(vs.guid)
    qemu_host.save(vs.guid)
    qemu_host.undefine(vs.guid)  # also removes the managed-save image
    assert qemu_host.get_system(vs.guid) is None


def test_scsi_disks_start(qemu_host: VirtHost, qemu_created: Tracker, storage_root: Path,
                          qemu_uri: str) -> None:
    """A qcow2 and a fixed VHD on a virtio-scsi controller; a VHDX is refused on libvirt 9.0
    (no vhdx disk format) with the fix in the message, or starts where libvirt knows it."""
    qcow = make_image(storage_root / "data.qcow2", "qcow2", "16M")
    vhd = make_image(storage_root / "fixed.vhd", "vpc", "16M", "-o", "subformat=fixed")
    vs = small_vm(qemu_created.new(), "scsi", disk=qcow, disk_format=ImageFormat.QCOW2,
                  scsi=True)
    scsi = vs.controllers[-1]
    second = Drive(new_guid(), DriveKind.DISK, scsi.dev_id, 5)
    vs.drives.append(second)
    vs.media.append(Media(new_guid(), second.dev_id, str(vhd), ImageFormat.VHD))
    qemu_host.define(vs)
    qemu_host.start(vs.guid)
    assert qemu_host.state(vs.guid) is E.ENABLED
    xml = live_xml(qemu_uri, vs.guid)
    assert "model='virtio-scsi'" in xml and "bus='scsi'" in xml and "unit='5'" in xml

    vhdx = make_image(storage_root / "data.vhdx", "vhdx", "16M")
    other = small_vm(qemu_created.new(), "vhdx", disk=vhdx, disk_format=ImageFormat.VHDX,
                     scsi=True)
    try:
        qemu_host.define(other)
    except NotSupported as err:
        assert "cannot attach VHDX images" in str(err)
        assert qemu_host.get_system(other.guid) is None
    else:
        qemu_host.start(other.guid)
        assert qemu_host.state(other.guid) is E.ENABLED
    qemu_host.turn_off(vs.guid)


def test_domain_type_auto(qemu_uri: str, qemu_created: Tracker) -> None:
    conn = libvirt.open(qemu_uri)
    try:
        offered = "domain type='kvm'" in conn.getCapabilities()
    finally:
        conn.close()
    with VirtHost(qemu_uri, "auto") as host:
        vs = small_vm(qemu_created.new(), "auto")
        host.define(vs)
        expected = "kvm" if offered else "qemu"
        assert live_xml(qemu_uri, vs.guid).startswith(f"<domain type='{expected}'")
        read = host.get_system(vs.guid)
        assert read is not None and read.accelerator == expected
    with VirtHost(qemu_uri) as default:  # "auto" is the default
        default.define(vs)
        read = default.get_system(vs.guid)
        assert read is not None and read.accelerator == expected
    with VirtHost(qemu_uri, "qemu") as forced:  # TCG can be forced on a KVM host
        forced.define(vs)
        read = forced.get_system(vs.guid)
        assert read is not None and read.accelerator == "qemu"


def test_states_cost_a_constant_number_of_calls(proxy: LibvirtProxy,
                                                qemu_created: Tracker) -> None:
    """Counted at the RPC level: the same number of calls for one VM as for five."""
    with VirtHost(proxy.uri) as host:
        def cost() -> int:
            counts = []
            for _ in range(3):  # other helpers' domains may send events: take the minimum
                host.states()
                before = proxy.calls
                host.states()
                counts.append(proxy.calls - before)
            return min(counts)

        vms = [small_vm(qemu_created.new(), f"count{i}") for i in range(5)]
        host.define(vms[0])
        one = cost()
        for vs in vms[1:]:
            host.define(vs)
        host.start(vms[1].guid)
        five = cost()
        assert one == five == 2
        states = host.states()
        assert {vs.guid: states[vs.guid] for vs in vms} == {
            vs.guid: E.ENABLED if vs is vms[1] else E.DISABLED for vs in vms}
        host.turn_off(vms[1].guid)


def test_reconnects_when_libvirtd_goes_away(proxy: LibvirtProxy, qemu_created: Tracker) -> None:
    with VirtHost(proxy.uri, reconnect_timeout=10) as host:
        vs = small_vm(qemu_created.new(), "reconnect")
        host.define(vs)
        proxy.cut()  # what a libvirtd restart looks like to the client
        assert host.get_system(vs.guid) == vs
        assert host.state(vs.guid) is E.DISABLED
        # down for a while, back before the deadline
        proxy.refuse(True)
        proxy.cut()
        started = time.monotonic()
        time.sleep(0.2)
        proxy.refuse(False)
        assert host.state(vs.guid) is E.DISABLED
        assert time.monotonic() - started < 10
        # changes made while we were disconnected are seen after reconnecting
        vs.name = "renamed"
        with VirtHost(proxy.uri) as other:
            other.define(vs)
        proxy.cut()
        assert host.list_systems() and host.get_system(vs.guid) == vs


def test_gives_up_after_the_deadline(proxy: LibvirtProxy, qemu_created: Tracker) -> None:
    with VirtHost(proxy.uri, reconnect_timeout=1.0) as host:
        host.list_systems()
        proxy.refuse(True)
        proxy.cut()
        started = time.monotonic()
        with pytest.raises(SystemNotAvailable) as info:
            host.list_systems()
        assert time.monotonic() - started < 5
        assert f"libvirt at {proxy.uri} is unreachable" in str(info.value)
        assert "start libvirtd" in str(info.value)
        proxy.refuse(False)
        assert isinstance(host.list_systems(), list)  # and recovers once it is back


def test_a_cold_start_reads_many_domains_at_once(qemu_uri: str, qemu_host: VirtHost,
                                                 qemu_created: Tracker,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Past PARALLEL_FROM domains a new host fetches their XML over several calls in flight;
    it lists exactly what one-by-one reading gives, and a domain that vanishes between the
    listing and its read is simply not listed."""
    vms = [small_vm(qemu_created.new(), f"cold{i}") for i in range(cache.PARALLEL_FROM + 6)]
    for vs in vms:
        qemu_host.define(vs)
    gone = vms[3].guid
    real = libvirt.virDomain.XMLDesc

    readers: set[str] = set()

    def vanishing(dom: libvirt.virDomain, flags: int = 0) -> str:
        readers.add(threading.current_thread().name)
        if dom.UUIDString().upper() == gone:  # undefined by someone else meanwhile
            raise libvirt.libvirtError("Domain not found")
        return str(real(dom, flags))

    monkeypatch.setattr(libvirt.virDomain, "XMLDesc", vanishing)
    monkeypatch.setattr(libvirt.libvirtError, "get_error_code",
                        lambda self: libvirt.VIR_ERR_NO_DOMAIN)
    with VirtHost(qemu_uri) as cold:
        listed = {vs.guid: vs for vs in cold.list_systems()}
    assert len(readers) > 1 and all(name.startswith("vsms-xml") for name in readers)
    for vs in vms:
        if vs.guid == gone:
            assert vs.guid not in listed
        else:
            assert listed[vs.guid] == qemu_host.get_system(vs.guid)
