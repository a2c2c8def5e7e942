"""Benchmark: boot the test guest OS to its marker line, KVM against TCG (reported, not asserted).

One VM per domain type (``kvm``, ``qemu`` = TCG) is defined through the service, as the guest
tests do it: the guest VHD (vsms.testing.guestos, built or found cached) on IDE 0:0, a data
VHD with a marker file on IDE 0:1, COM 1 on a Unix socket, no NIC. Each repetition times
RequestStateChange 2 from the call until the guest prints the marker's SHA-256 on its serial
console (the line is checked), then turns the VM off. A domain type whose guest does not print
the line within ``--timeout`` is reported as such (a KVM that cannot boot a stock kernel, for
example a paravirtual nested KVM); the run goes on with the next type. Every VM and file it made
is removed. Not part of the test suite.

    .venv/bin/python bench/bench_guest_boot.py [--dir /var/tmp] [--repeat 3]
        [--types kvm,qemu] [--timeout 300] [--uri qemu:///system]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import secrets
import shutil
import sys
import time
from pathlib import Path

import pywbem
from benchlib import BenchError, Rig, machine, row, stop_on_sigterm, world_dir

from vsms.cim import names
from vsms.cim.embedded import serialize_instance
from vsms.cim.enums import JobState, ReturnCode
from vsms.testing import guestos
from vsms.testing.serialconsole import Console


def _vm_path(guid: str) -> pywbem.CIMInstanceName:
    return pywbem.CIMInstanceName(names.COMPUTER_SYSTEM, keybindings={
        "CreationClassName": names.COMPUTER_SYSTEM, "Name": guid}, namespace=names.NAMESPACE)


def _state(rig: Rig, guid: str, state: int) -> None:
    rv, out = rig.client.invoke(_vm_path(guid), "RequestStateChange",
                                RequestedState=pywbem.Uint16(state))
    if rv == ReturnCode.JOB_STARTED:
        rec = rig.svc.jobs.wait(str(out["Job"].keybindings["InstanceID"]), 120)
        if rec.state is not JobState.COMPLETED:
            raise BenchError(f"RequestStateChange {state} ended {rec.error_description}")
    elif rv != ReturnCode.COMPLETED:
        raise BenchError(f"RequestStateChange {state} returned {rv}")


def _com1(rig: Rig, guid: str, sock: Path) -> None:
    client = rig.client
    vssd = client.registry.associators(client.namespace, _vm_path(guid),
                                       assoc_class=names.SETTINGS_DEFINE_STATE,
                                       result_class=names.VSSD)[0]
    com = next(r for r in client.registry.associators(
        client.namespace, vssd.path, assoc_class=names.VSSD_COMPONENT, result_class=names.RASD)
        if r["ResourceType"] == 17 and r["ElementName"] == "COM 1")
    com["Connection"] = [str(sock)]
    rv, out = client.vsms("ModifyVirtualSystemResources", ComputerSystem=_vm_path(guid),
                          ResourceSettingData=[serialize_instance(com)])
    if rv == ReturnCode.JOB_STARTED:
        rig.svc.jobs.wait(str(out["Job"].keybindings["InstanceID"]), 120)
    elif rv != ReturnCode.COMPLETED:
        raise BenchError(f"setting COM 1 returned {rv}")


def boot_times(rig: Rig, image: Path, repeat: int, timeout: float) -> list[float] | str:
    """Seconds from RequestStateChange 2 to the marker line, per repetition; or why not."""
    marker = secrets.token_bytes(4096)
    want = hashlib.sha256(marker).hexdigest()
    boot, data = rig.root / "boot.vhd", rig.root / "data.vhd"
    shutil.copyfile(image, boot)
    boot.chmod(0o644)
    guestos.data_disk(data, {"marker": marker})
    serial = world_dir(rig.root / "serial")
    serial.chmod(0o1777)
    guid = rig.define_vm(f"guestboot-{rig.token}", [boot, data])
    sock = serial / "com1.sock"
    _com1(rig, guid, sock)
    times: list[float] = []
    for _ in range(repeat):
        console = Console(sock)
        try:
            start = time.monotonic()
            _state(rig, guid, 2)
            try:
                at, found = console.wait(r"marker sha256=([0-9a-f]{64})", timeout)
            except AssertionError:
                return f"no marker line within {timeout:.0f}s"
            if found.group(1) != want:
                raise BenchError(f"the guest printed {found.group(1)}, not {want}")
            times.append(at - start)
        finally:
            console.stop()
            _state(rig, guid, 3)
    return times


def main(argv: list[str] | None = None) -> int:
    stop_on_sigterm()
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--types", default="kvm,qemu", help="domain types, comma-separated")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per boot")
    p.add_argument("--uri", default="qemu:///system")
    args = p.parse_args(argv)
    print(f"machine: {machine()}")
    image = guestos.guest_image(world_dir(args.dir / "vsms-tests") / "guest-cache")
    print(f"guest image: {image}")
    for dtype in args.types.split(","):
        rig = Rig(args.dir, args.uri)
        rig.settings = dataclasses.replace(rig.settings, domain_type=dtype)
        try:
            with rig:
                result = boot_times(rig, image, args.repeat, args.timeout)
        except BenchError as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 2
        if isinstance(result, str):
            print(f"{dtype:5} boot to marker line: {result}")
        else:
            print(row(f"{dtype:5} boot to marker line", result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
