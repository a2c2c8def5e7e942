"""Snapshots seen from inside a real guest OS (vsms.testing.guestos) on qemu:///system, driven
over CIM-XML by pywbem.

One VM, booted twice, no network adapter: DefineVirtualSystem + AddVirtualSystemResources
(IDE 0:0 the guest VHD, IDE 0:1 a data VHD holding the marker M1, COM 1 on a socket). The guest
prints the SHA-256 of the marker at boot and, on command, rewrites it (``write``) or prints it
again from its page cache (``show``) or from the disk (``reread``), see
vsms.testing.guestinit. The two tests run in order on the same VM:

1. on VHDs, the running guest gets a disk-only snapshot S1; it then writes M2, shuts down;
   S1 applied gives a turned-off VM; S1 removed merges the VM back onto its VHDs, which hold
   M1 again (read on the host);
2. the VHDs converted to qcow2 (the VM's disks switched to them): the guest boots and prints
   M1 (what applying S1 gave, seen by the guest), writes M3; a snapshot S2 with its memory
   state; M4 written, the VM turned off; S2 applied gives a Suspended VM that resumes the same
   guest process (no new boot), whose page cache and disk both hold M3; removing S2 after one
   more write merges that write into the qcow2 file.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pywbem

from tests.conftest import fresh_dir
from tests.e2e import wbemflow
from tests.e2e.conftest import Served, remove_vms
from tests.guest import guests
from tests.guest.conftest import GuestImage
from vsms.cim import names
from vsms.cim.enums import EnabledState, JobState, ReturnCode
from vsms.testing import guestos

pytestmark = pytest.mark.qemu
SHA = r"marker sha256=([0-9a-f]{64})"


@dataclass
class Rig:
    conn: pywbem.WBEMConnection
    served: Served
    root: Path
    vm: pywbem.CIMInstanceName
    boot: Path
    data: Path
    done: set[str] = field(default_factory=set)  # the scenarios that ran to their end
    consoles: list[guests.Console] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    snapshots: Path | None = None  # <root>/Snapshots/<VM GUID>: the overlays and memory files

    @property
    def guid(self) -> str:
        return str(self.vm.keybindings["Name"]).upper()

    def console(self) -> guests.Console:
        """A reader of COM 1 for the next run of the VM (open it before starting the VM)."""
        c = guests.Console(self.root / "serial" / "g.sock")
        self.consoles.append(c)
        return c


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def rig(guest_image: GuestImage) -> Iterator[Rig]:
    image, dtype = guest_image.path, guest_image.domain_type
    root = fresh_dir()
    served = guests.serve(root, dtype)
    conn = served.connect()
    rig = None
    try:
        serial = root / "serial"
        serial.mkdir()
        serial.chmod(0o1777)
        vms = root / "vms"
        vms.mkdir()
        vms.chmod(0o755)
        boot, data = vms / "boot.vhd", vms / "data.vhd"
        shutil.copyfile(image, boot)
        boot.chmod(0o644)
        guestos.data_disk(data, {"marker": b"M1", "no-nic": b""})
        vm = wbemflow.define_vm(conn, f"gsnap-{root.name}", memory_mb=128, track=served.guids)
        guests.add_disk(conn, vm, boot, 0)
        guests.add_disk(conn, vm, data, 1)
        guests.set_com1(conn, vm, serial / "g.sock")
        rig = Rig(conn, served, root, vm, boot, data)
        yield rig
    finally:
        if rig is not None:
            for c in rig.consoles:
                c.stop()
            print(f"guest snapshot tests: domain type {dtype}, seconds {rig.timings}")
        conn.close()
        served.server.stop()
        served.service.jobs.shutdown(60)
        remove_vms(served)
        served.service.close()
        shutil.rmtree(root, ignore_errors=True)


def job_of(rig: Rig, method: str, **params: object) -> tuple[pywbem.CIMInstance, dict[str, object]]:
    """Invoke a snapshot method; it answers 4096 and its job completes."""
    rv, out = wbemflow.invoke(rig.conn, names.VSMS, method, **params)
    assert rv == ReturnCode.JOB_STARTED, (method, rv, out)
    job = wbemflow.wait_job(rig.conn, out["Job"], timeout=300)
    assert job["JobState"] == JobState.COMPLETED, (method, job["ErrorDescription"])
    return job, out


def state(rig: Rig) -> int:
    return wbemflow.enabled_state(rig.conn, rig.vm)


def start(rig: Rig) -> guests.Console:
    console = rig.console()
    wbemflow.request_state(rig.conn, rig.vm, 2)
    assert state(rig) == EnabledState.ENABLED
    return console


def disks(rig: Rig) -> list[str]:
    """The VM's disk images by IDE slot (0:0 first): the image RASDs' Connection, each found
    under its drive (its Parent), as a client reads them."""
    rasds = wbemflow.settings_of(rig.conn, rig.vm)
    slot = {str(r.path.keybindings["InstanceID"]): str(r["Address"])
            for r in rasds if r["ResourceType"] == 22}
    found = []
    for r in rasds:
        if r["ResourceType"] == 21:
            drive = pywbem.CIMInstanceName.from_wbem_uri(str(r["Parent"]))
            found.append((slot[str(drive.keybindings["InstanceID"])], str(r["Connection"][0])))
    return [path for _, path in sorted(found)]


def snapshot_files(rig: Rig) -> list[str]:
    """The files in the VM's snapshot folder (found from its first overlays)."""
    assert rig.snapshots is not None
    return sorted(p.name for p in rig.snapshots.iterdir())


def snapshots(rig: Rig) -> list[pywbem.CIMInstance]:
    found = rig.conn.Associators(rig.vm, AssocClass=names.ELEMENT_SETTING_DATA,
                                 ResultClass=names.VSSD)
    return [s for s in found if s["SettingType"] == 5]


def test_disk_only_snapshot_of_a_running_vhd_guest(rig: Rig) -> None:
    """A disk-only snapshot of the running guest on VHDs: the guest runs on through it and its
    later write lands in the overlay (the frozen VHD still holds M1); applied with the VM shut
    down, the VM stays off (no memory state); removed, the VM is back on its VHDs, which hold
    M1 and not M2."""
    t0 = time.monotonic()
    console = start(rig)
    assert console.wait(SHA)[1].group(1) == sha("M1")
    console.wait("nic missing", timeout=30)
    console.wait("ready", timeout=60)
    rig.timings["boot 1"] = time.monotonic() - t0

    job, out = job_of(rig, "CreateVirtualSystemSnapshot", SourceSystem=rig.vm)
    assert "disk-only" in job["Description"], job["Description"]
    assert state(rig) == EnabledState.ENABLED
    s1 = out["SnapshotSettingData"]
    assert isinstance(s1, pywbem.CIMInstanceName)
    overlays = disks(rig)
    assert [Path(p).suffix for p in overlays] == [".qcow2", ".qcow2"], overlays
    rig.snapshots = Path(overlays[0]).parent
    assert rig.snapshots.name == rig.guid and rig.snapshots.parent.name == "Snapshots"
    assert len(snapshot_files(rig)) == 2
    assert console.ask("show", SHA).group(1) == sha("M1")  # the guest runs on the overlays

    assert console.ask("write M2", SHA).group(1) == sha("M2")
    assert guests.marker_in(rig.data, "vpc") == b"M1"  # S1's frozen image is untouched
    assert guests.marker_in(Path(overlays[1]), "qcow2") == b"M2"

    (shutdown,) = [d.path for d in rig.conn.Associators(
        rig.vm, AssocClass="Msvm_SystemDevice", ResultClass="Msvm_ShutdownComponent")]
    rv, out = wbemflow.invoke(rig.conn, shutdown, "InitiateShutdown", Force=False,
                              Reason="guest snapshot test")
    assert rv == ReturnCode.JOB_STARTED, out
    console.wait("power button: powering off", timeout=120)
    job = wbemflow.wait_job(rig.conn, out["Job"], timeout=120)
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    assert state(rig) == EnabledState.DISABLED

    job, _ = job_of(rig, "ApplyVirtualSystemSnapshotEx", ComputerSystem=rig.vm,
                    SnapshotSettingData=s1)
    assert state(rig) == EnabledState.DISABLED  # S1 has no memory state
    applied = disks(rig)
    assert applied[1] != overlays[1] and guests.marker_in(Path(applied[1]), "qcow2") == b"M1"

    job_of(rig, "RemoveVirtualSystemSnapshot", SnapshotSettingData=s1)
    assert snapshots(rig) == []
    assert disks(rig) == [str(rig.boot), str(rig.data)]  # merged back onto the VHDs
    assert snapshot_files(rig) == []  # M2's overlay and the applied one are gone
    assert guests.marker_in(rig.data, "vpc") == b"M1"
    rig.timings["scenario 1"] = time.monotonic() - t0
    rig.done.add("vhd")


def test_memory_snapshot_of_a_running_qcow2_guest(rig: Rig) -> None:
    """On qcow2 copies of its disks, the guest boots into what applying S1 left (M1). A
    snapshot of the running guest holds its memory state; applied after a later write and a
    hard turn-off, the VM is Suspended and resumes the same guest process (no boot line),
    whose page cache and disk both hold what they held at the snapshot (M3, not M4). Removing
    the snapshot merges the writes made since into the VM's qcow2 file."""
    if "vhd" not in rig.done:
        pytest.skip("needs the VM the disk-only scenario leaves")
    t0 = time.monotonic()
    qcow = {}
    for src in (rig.boot, rig.data):
        qcow[src] = src.with_suffix(".qcow2")
        subprocess.run(["qemu-img", "convert", "-q", "-f", "vpc", "-O", "qcow2", str(src),
                        str(qcow[src])], check=True, timeout=120)
        qcow[src].chmod(0o644)
    for rasd in wbemflow.settings_of(rig.conn, rig.vm):
        if rasd["ResourceType"] == 21:
            rasd["Connection"] = [str(qcow[Path(rasd["Connection"][0])])]
            wbemflow.modify(rig.conn, rig.vm, rasd)
    assert disks(rig) == [str(qcow[rig.boot]), str(qcow[rig.data])]

    console = start(rig)
    assert console.wait(SHA)[1].group(1) == sha("M1")  # S1 applied, seen from the guest
    console.wait("ready", timeout=60)
    rig.timings["boot 2"] = time.monotonic() - t0
    assert console.ask("write M3", SHA).group(1) == sha("M3")

    job, out = job_of(rig, "CreateVirtualSystemSnapshot", SourceSystem=rig.vm)
    assert "with its memory state" in job["Description"], job["Description"]
    assert state(rig) == EnabledState.ENABLED
    s2 = out["SnapshotSettingData"]
    assert isinstance(s2, pywbem.CIMInstanceName)
    assert console.ask("write M4", SHA).group(1) == sha("M4")
    wbemflow.request_state(rig.conn, rig.vm, 3)  # turned off, not shut down
    assert state(rig) == EnabledState.DISABLED
    current = disks(rig)
    assert [Path(p).parent for p in current] == [rig.snapshots] * 2, current
    assert guests.marker_in(Path(current[1]), "qcow2") == b"M4"

    job_of(rig, "ApplyVirtualSystemSnapshotEx", ComputerSystem=rig.vm, SnapshotSettingData=s2)
    assert state(rig) == EnabledState.SUSPENDED  # the memory state is back
    t1 = time.monotonic()
    resumed = start(rig)
    assert resumed.ask("show", SHA).group(1) == sha("M3")  # the page cache of the snapshot
    assert resumed.ask("reread", SHA).group(1) == sha("M3")  # and the disk with it
    rig.timings["resume"] = time.monotonic() - t1
    assert "boot" not in resumed.text() and "ready" not in resumed.text(), resumed.text()

    assert resumed.ask("write M5", SHA).group(1) == sha("M5")
    wbemflow.request_state(rig.conn, rig.vm, 3)
    memory = [n for n in snapshot_files(rig) if n.endswith(".save")]
    assert len(memory) == 1, snapshot_files(rig)
    job_of(rig, "RemoveVirtualSystemSnapshot", SnapshotSettingData=s2)
    assert snapshots(rig) == [] and snapshot_files(rig) == []
    assert disks(rig) == [str(qcow[rig.boot]), str(qcow[rig.data])]
    assert guests.marker_in(qcow[rig.data], "qcow2") == b"M5"
    rig.timings["scenario 2"] = time.monotonic() - t0
