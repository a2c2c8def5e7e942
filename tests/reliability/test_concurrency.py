"""Concurrency: requests that race for the same VM or export directory, through the Python API.

Two in-place imports of one directory (exactly one wins), two copy imports of one export (both
win, distinct VMs), an export racing a destroy (one outcome or the other, never a partial export
or a half-destroyed VM), and a start requested while an export runs (refused: busy).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pywbem

from tests import hyperv
from tests.reliability.scenarios import mkdir
from vsms.app import Service
from vsms.cim.embedded import serialize_instance
from vsms.cim.enums import EnabledState, JobState, OperationalStatus, ReturnCode
from vsms.client import LocalClient
from vsms.exportdir.reader import read_export

pytestmark = pytest.mark.qemu

ROUNDS = 6

Call = Callable[[], tuple[int, dict[str, Any]]]


def at_once(*calls: Call, delays: tuple[float, ...] = ()) -> list[tuple[int, dict[str, Any]]]:
    """Run the calls on separate threads released together (call i after ``delays[i]``
    seconds); their (ReturnValue, out) in order."""
    gate = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Call) -> None:
        gate.wait(timeout=30)
        if i < len(delays) and delays[i]:
            time.sleep(delays[i])
        try:
            results[i] = call()
        except BaseException as exc:  # reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(not t.is_alive() for t in threads), "a request never returned"
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


def finish(client: LocalClient, rv: int, out: dict[str, Any]) -> pywbem.CIMInstance | None:
    """The finished job of a 4096 answer, None for an immediate ReturnValue."""
    return client.wait(out["Job"], timeout=300) if rv == ReturnCode.JOB_STARTED else None


def new_vm(client: LocalClient, root: Path, name: str, data_mb: int = 2,
           size: str = "64M") -> tuple[pywbem.CIMInstanceName, str]:
    vms = root / "vms"
    if not vms.exists():
        mkdir(vms)
    disk = str(vms / f"{name}.vhd")
    hyperv.make_vhd(disk, size, data_mb=data_mb)
    vm = hyperv.define_vm(client, f"{name}-{root.name}")
    hyperv.add_vhd(client, vm, disk)
    return vm, str(vm.keybindings["Name"])


def export(client: LocalClient, vm: pywbem.CIMInstanceName, target: Path) -> Path:
    job = finish(client, *client.vsms("ExportVirtualSystem", ComputerSystem=vm,
                                      CopyVmState=True, ExportDirectory=str(target)))
    assert job is not None and job["JobState"] == JobState.COMPLETED, job
    (exp,) = [p for p in target.iterdir()]
    return exp


def ours(service: Service, root: Path) -> dict[str, str]:
    """GUID -> name of this test's VMs."""
    return {vs.guid: vs.name for vs in service.host.list_systems()
            if root.name in vs.name or any(str(root) in m.path for m in vs.media)}


def test_two_in_place_imports_of_one_directory(service: Service, client: LocalClient,
                                               storage_root: Path) -> None:
    vm, _ = new_vm(client, storage_root, "twice")
    losers: dict[str, int] = {}
    for round_ in range(ROUNDS):
        exp = export(client, vm, mkdir(storage_root / f"exp{round_}"))
        manifest = (exp / "manifest.sha256").read_text()
        before = ours(service, storage_root)

        call = functools.partial(client.vsms, "ImportVirtualSystem",
                                 ImportDirectory=str(exp), GenerateNewID=True)

        answers = at_once(call, call)
        jobs = [finish(client, rv, out) for rv, out in answers]
        won = [j for j in jobs if j is not None and j["JobState"] == JobState.COMPLETED]
        assert len(won) == 1, [(rv, j and j["ErrorDescription"]) for (rv, _), j in
                               zip(answers, jobs, strict=True)]
        for (rv, _), job in zip(answers, jobs, strict=True):
            if job is None:  # refused at once: the directory is already claimed
                assert rv == ReturnCode.SYSTEM_IN_USE, rv
                losers["refused at once (32774)"] = losers.get("refused at once (32774)", 0) + 1
            elif job is not won[0]:
                assert job["JobState"] == JobState.EXCEPTION
                assert job["ErrorCode"] == ReturnCode.SYSTEM_IN_USE
                text = job["ErrorDescription"]
                assert "already imported in place" in text or "already used by virtual " \
                    "machine" in text, text
                key = "job failed: " + ("directory already imported" if "imported" in text
                                        else "disk already used")
                losers[key] = losers.get(key, 0) + 1
        winner = client.affected_vm(won[0])
        after = ours(service, storage_root)
        assert set(after) - set(before) == {winner["Name"]}
        # the directory stays claimed by the winner: a third import is refused at once
        assert service.store.consumed(str(exp)) == winner["Name"]
        assert call()[0] == ReturnCode.SYSTEM_IN_USE
        assert service.store.jobs_with_undo() == []
        assert (exp / "manifest.sha256").read_text() == manifest
        read_export(exp, verify=True)
    print("in-place import race, the loser:", losers)


def test_two_copy_imports_of_one_export(service: Service, client: LocalClient,
                                        storage_root: Path) -> None:
    vm, _ = new_vm(client, storage_root, "copies")
    exp = export(client, vm, mkdir(storage_root / "exp"))
    before = ours(service, storage_root)

    def call(n: int) -> Call:
        def go() -> tuple[int, dict[str, Any]]:
            rv, out = client.vsms("GetVirtualSystemImportSettingData", ImportDirectory=str(exp))
            assert rv == ReturnCode.COMPLETED
            isd: pywbem.CIMInstance = out["ImportSettingData"]
            isd["CreateCopy"] = True
            isd["GenerateNewId"] = True
            isd["Name"] = f"copy{n}-{storage_root.name}"
            return client.vsms("ImportVirtualSystemEx", ImportDirectory=str(exp),
                               ImportSettingData=serialize_instance(isd))
        return go

    answers = at_once(call(1), call(2))
    jobs = [finish(client, rv, out) for rv, out in answers]
    for job in jobs:
        assert job is not None and job["JobState"] == JobState.COMPLETED, \
            job and job["ErrorDescription"]
    made = [client.affected_vm(j) for j in jobs if j is not None]
    guids = {m["Name"] for m in made}
    assert len(guids) == 2 and set(ours(service, storage_root)) - set(before) == guids
    disks = [[r["Connection"][0] for r in hyperv.rasds(client, m.path) if r["ResourceType"] == 21]
             for m in made]
    assert disks[0] != disks[1] and all(Path(d[0]).is_file() for d in disks)
    assert service.store.consumed(str(exp)) is None
    read_export(exp, verify=True)


def _vm_exists(service: Service, guid: str) -> bool:
    return service.host.get_system(guid) is not None


# (export delay, destroy delay) in seconds: at once, each a little after the other, and the
# destroy well after the export started
RACES = ((0.0, 0.0), (0.0, 0.0), (0.0, 0.02), (0.02, 0.0), (0.0, 0.1), (0.0, 0.3))


def test_export_while_destroying(service: Service, client: LocalClient,
                                 storage_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Both requests at once or nearly: either the export completes (and the VM is destroyed
    after it, or the destroy is refused as busy), or the export is refused with a reason and
    leaves nothing; never a partial export or a half-destroyed VM."""
    caplog.set_level(logging.INFO)
    outcomes: dict[str, int] = {}
    for round_, delays in enumerate(RACES):
        vm, guid = new_vm(client, storage_root, f"race{round_}", data_mb=16)
        target = mkdir(storage_root / f"exp{round_}")
        caplog.clear()
        (erv, eout), (drv, dout) = at_once(
            functools.partial(client.vsms, "ExportVirtualSystem", ComputerSystem=vm,
                              CopyVmState=True, ExportDirectory=str(target)),
            functools.partial(client.vsms, "DestroyVirtualSystem", ComputerSystem=vm),
            delays=delays)
        exported, destroyed = finish(client, erv, eout), finish(client, drv, dout)
        export_ok = exported is not None and exported["JobState"] == JobState.COMPLETED
        destroy_ok = destroyed is not None and destroyed["JobState"] == JobState.COMPLETED
        entries = list(target.iterdir())
        if export_ok:
            assert len(entries) == 1
            read_export(entries[0], verify=True)
        else:
            assert entries == [], f"a failed export left {entries}"
            reason = exported["ErrorDescription"] if exported is not None else caplog.text
            assert any(w in reason for w in ("busy", "no virtual machine", "does not exist")), \
                reason
        if destroy_ok:
            assert not _vm_exists(service, guid)
        else:
            assert drv == ReturnCode.INVALID_STATE and destroyed is None, drv
            assert "busy: an export is in progress" in caplog.text, caplog.text
            assert _vm_exists(service, guid)
            assert hyperv.vm_state(client, vm) == EnabledState.DISABLED
            hyperv.finished_ok(client, *client.vsms("DestroyVirtualSystem", ComputerSystem=vm))
        assert export_ok or destroy_ok
        how = "refused at once" if exported is None else "job failed"
        key = (f"export {'completed' if export_ok else how}, "
               f"destroy {'completed' if destroy_ok else 'refused (busy)'}")
        outcomes[key] = outcomes.get(key, 0) + 1
        assert service.store.jobs_with_undo() == []
    print("export vs destroy outcomes:", outcomes)


def _wait_exporting(client: LocalClient, vm: pywbem.CIMInstanceName,
                    job_path: pywbem.CIMInstanceName) -> None:
    deadline = time.monotonic() + 60
    while True:
        inst = client.registry.get_instance(client.namespace, vm)
        if OperationalStatus.EXPORTING in list(inst["OperationalStatus"] or []):
            return
        assert client.job(job_path)["JobState"] in (JobState.NEW, JobState.RUNNING), \
            "the export ended before it was seen running"
        assert time.monotonic() < deadline, "the export never showed as running"
        time.sleep(0.002)


def test_start_or_destroy_refused_while_exporting(service: Service, client: LocalClient,
                                                  storage_root: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    vm, guid = new_vm(client, storage_root, "busy", data_mb=384, size="1G")
    target = mkdir(storage_root / "exp")
    rv, out = client.vsms("ExportVirtualSystem", ComputerSystem=vm, CopyVmState=True,
                          ExportDirectory=str(target))
    assert rv == ReturnCode.JOB_STARTED
    _wait_exporting(client, vm, out["Job"])
    rv_start, _ = client.invoke(vm, "RequestStateChange", RequestedState=pywbem.Uint16(2))
    rv_destroy, _ = client.vsms("DestroyVirtualSystem", ComputerSystem=vm)
    still_running = client.job(out["Job"])["JobState"] == JobState.RUNNING
    job = client.wait(out["Job"], timeout=300)
    assert still_running, "the export ended before both requests were answered"
    assert rv_start == ReturnCode.INVALID_STATE, rv_start
    assert rv_destroy == ReturnCode.INVALID_STATE, rv_destroy
    assert caplog.text.count("busy: an export is in progress") >= 2, caplog.text
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    read_export(target / f"busy-{storage_root.name}", verify=True)
    # once the export is over the same requests work
    assert hyperv.vm_state(client, vm) == EnabledState.DISABLED
    hyperv.request_state(client, vm, 2)
    assert hyperv.vm_state(client, vm) == EnabledState.ENABLED
    hyperv.request_state(client, vm, 3)
    hyperv.finished_ok(client, *client.vsms("DestroyVirtualSystem", ComputerSystem=vm))
    assert not _vm_exists(service, guid)
