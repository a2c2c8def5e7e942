"""``vsms vm``, ``vsms disk`` and ``vsms jobs`` end to end against a real ``vsms serve``."""

from __future__ import annotations

import libvirt
import pytest

from tests.cli.conftest import Vsms
from tests.cli.served import Served
from tests.conftest import QEMU_URI

pytestmark = pytest.mark.qemu


def kvm_offered() -> bool:
    conn = libvirt.open(QEMU_URI)
    try:
        return "domain type='kvm'" in conn.getCapabilities()
    finally:
        conn.close()


def test_disk_create_and_info(served: Served, vsms: Vsms) -> None:
    path = served.root / "cli-disk.vhdx"
    res = vsms.ok("disk", "create", str(path), "--size", "32M")
    assert res.out.strip() == f"Created dynamic virtual hard disk {path} (32.0 MiB)."
    assert path.is_file()
    assert "Creating cli-disk.vhdx: 100%" in res.err  # plain progress lines off a terminal
    info = vsms.ok("--output", "json", "disk", "info", str(path)).json()
    assert info["type"] == "Dynamic" and info["max_internal_size"] == 32 << 20
    assert info["in_use"] is False and info["parent_path"] == ""
    fixed = served.root / "cli-fixed.vhd"
    vsms.ok("disk", "create", str(fixed), "--size", "4M", "--fixed")
    text = vsms.ok("disk", "info", str(fixed)).out
    assert "Type:          Fixed" in text and "(4194304 bytes)" in text
    again = vsms("disk", "create", str(path), "--size", "32M")
    assert again.rc == 1 and "Invalid parameter (32773)" in again.err, again
    missing = vsms("disk", "info", str(served.root / "nope.vhd"))
    assert missing.rc == 1 and "GetVirtualHardDiskInfo failed" in missing.err, missing
    bad = vsms("disk", "create", str(path), "--size", "lots")
    assert bad.rc == 2 and "is not a size" in bad.err


def test_vm_create_show_list_and_destroy(served: Served, vsms: Vsms) -> None:
    name = f"cli-vm-{served.root.name}"
    disk = served.root / "vm-disk.vhd"
    vsms.ok("disk", "create", str(disk), "--size", "16M")
    created = vsms.ok("--output", "json", "vm", "create", name, "--memory", "256", "--cpus",
                      "2", "--disk", str(disk), "--nic", "--nic", "vsms-test-net").json()
    vm = created["vm"]
    assert (vm["name"], vm["memory_mb"], vm["processors"], vm["state"]) == (name, 256, 2, "Off")
    assert vm["disks"] == [{"location": "IDE 0:0", "path": str(disk)}]
    assert sorted(n["switch"] for n in vm["network_adapters"]) == ["", "vsms-test-net"]
    listed = vsms.ok("--output", "json", "vm", "list").json()
    assert [v["id"] for v in listed if v["name"] == name] == [vm["id"]]
    text = vsms.ok("vm", "list").out.splitlines()
    assert text[0].split() == ["NAME", "STATE", "ID"]
    assert any(line.split() == [name, "Off", vm["id"]] for line in text)
    shown = vsms.ok("vm", "show", vm["id"]).out  # by ID as well as by name
    assert f"Name:        {name}" in shown and f"Disk:        IDE 0:0  {disk}" in shown
    assert "Memory:      256 MB" in shown and "switch vsms-test-net" in shown
    accel = "KVM" if kvm_offered() else "TCG"  # the server runs with domain_type "auto"
    assert vm["accelerator"] == accel and f"Accelerator: {accel} (" in shown
    res = vsms.ok("vm", "destroy", name)
    assert res.out.strip() == (f"Destroyed virtual machine '{name}' ({vm['id']}); its disk "
                               "images were kept.")
    assert disk.is_file()
    gone = vsms("vm", "show", name)
    assert gone.rc == 1 and f"no virtual machine is named '{name}'" in gone.err


def test_vm_create_failure_leaves_nothing(served: Served, vsms: Vsms) -> None:
    name = f"cli-half-{served.root.name}"
    res = vsms("vm", "create", name, "--disk", str(served.root / "absent.vhd"))
    assert res.rc == 1 and "AddVirtualSystemResources failed" in res.err, res
    assert "the half-made virtual machine was removed again" in res.err
    assert name not in vsms.ok("vm", "list").out
    conn = libvirt.open(QEMU_URI)
    try:
        host_mb = int(conn.getInfo()[1])
    finally:
        conn.close()
    big = vsms("vm", "create", name, "--memory", str(host_mb + 1))  # more than the host has
    assert big.rc == 1 and "Invalid parameter (32773)" in big.err, big
    assert f"memory of {host_mb + 1} MB is out of range: give 8 to {host_mb} MB (the most " \
           f"libvirt at {QEMU_URI} (" in big.err, big
    assert "the half-made virtual machine was removed again" in big.err
    assert name not in vsms.ok("vm", "list").out
    five = vsms("vm", "create", name, *[a for i in range(5) for a in ("--disk", f"/d{i}.vhd")])
    assert five.rc == 1 and "at most 4 disks" in five.err
    assert name not in vsms.ok("vm", "list").out


def test_vm_life_cycle(served: Served, vsms: Vsms) -> None:
    name = f"cli-run-{served.root.name}"
    vsms.ok("vm", "create", name, "--memory", "64")
    try:
        assert vsms.ok("vm", "start", name).out.strip() == \
            f"Virtual machine '{name}' is now Running."
        paused = vsms.ok("--output", "json", "vm", "pause", name).json()
        assert paused["vm"]["state"] == "Paused" and paused["job"]["state"] == "Completed"
        assert "now Running" in vsms.ok("vm", "start", name).out  # resume
        busy = vsms("vm", "destroy", name)
        assert busy.rc == 1 and "Invalid state for this operation (32775)" in busy.err, busy
        assert "now Saved" in vsms.ok("vm", "save", name).out
        assert "now Running" in vsms.ok("vm", "start", name).out  # restore
        assert "now Off" in vsms.ok("vm", "stop", name).out
        again = vsms("--output", "json", "vm", "stop", name)
        assert again.rc == 1 and again.json()["return_value"] == 32775, again
        assert "RequestStateChange failed: Invalid state for this operation (32775)" in again.err
    finally:
        vsms("vm", "stop", name)
        vsms.ok("vm", "destroy", name)


def test_jobs_list_and_watch(served: Served, vsms: Vsms) -> None:
    path = served.root / "jobs-disk.vhd"
    vsms.ok("disk", "create", str(path), "--size", "8M")
    jobs = vsms.ok("--output", "json", "jobs").json()
    mine = [j for j in jobs if str(path) in (j["description"] or "")]
    assert mine and mine[-1]["state"] == "Completed" and mine[-1]["percent"] == 100
    assert mine[-1]["class"] == "Msvm_StorageJob"
    table = vsms.ok("jobs").out.splitlines()
    assert table[0].split() == ["ID", "NAME", "STATE", "DONE", "DETAIL"]
    assert any(mine[-1]["id"] in line and "Completed" in line for line in table)
    watched = vsms.ok("jobs", "--watch")
    assert watched.out.rstrip().endswith("no job is running")
    assert mine[-1]["id"] in watched.out


def test_client_failures_say_why(served: Served, vsms: Vsms) -> None:
    down = Vsms("http://127.0.0.1:9")("vm", "list")
    assert down.rc == 1 and "cannot reach the vsms service at http://127.0.0.1:9" in down.err
    res = vsms("--output", "json", "vm", "start", "no-such-vm")
    assert res.rc == 1 and res.json() == {"ok": False, "vm": "no-such-vm", "error":
                                          "no virtual machine is named 'no-such-vm': see "
                                          "`vsms vm list`"}
    usage = vsms("vm", "create")
    assert usage.rc == 2 and "the following arguments are required: name" in usage.err
    neg = vsms("vm", "create", "x", "--memory", "0")
    assert neg.rc == 2 and "must be at least 1" in neg.err
