"""sblim wbemcli, unmodified, as a subprocess against the real service."""

from __future__ import annotations

import functools
import re
import shutil

import pytest
import pywbem

from tests.e2e import clients
from tests.e2e.conftest import Served
from vsms.cim import names
from vsms.cim.enums import JobState

pytestmark = [pytest.mark.qemu,
              pytest.mark.skipif(shutil.which("wbemcli") is None,
                                 reason="sblim wbemcli is not installed (apt-get install "
                                        "sblim-wbemcli)")]

_JOB_ID = re.compile(r'Job \(reference\): .*Msvm_ConcreteJob\.InstanceID="([0-9A-F-]{36})"')


def test_wbemcli(served: Served, conn: pywbem.WBEMConnection) -> None:
    vm, dirs = clients.exported_vm(served, conn, exports=1)
    guid = str(vm.keybindings["Name"])
    base = f"{served.url}/{names.NAMESPACE}"
    shown = base.removeprefix("http://")  # how wbemcli prints the paths it gets

    def wbemcli(*args: str) -> str:
        res = clients.run(["wbemcli", *args], served.root)
        assert res.returncode == 0, (args, res.stdout, res.stderr)
        return res.stdout

    classes = wbemcli("ecn", base).split()
    assert f"{shown}:{names.COMPUTER_SYSTEM}" in classes
    assert f"{shown}:{names.CONCRETE_JOB}" in classes

    systems = wbemcli("ei", f"{base}:{names.COMPUTER_SYSTEM}")
    vm_path = f'{names.COMPUTER_SYSTEM}.CreationClassName="{names.COMPUTER_SYSTEM}",Name="{guid}"'
    assert f"{shown}:{vm_path} " in systems
    assert f'ElementName="src-{served.token}"' in systems
    assert 'Caption="Hosting Computer System"' in systems

    one = wbemcli("gi", f"{base}:{vm_path}")
    assert one.count("\n") == 1 and f'Name="{guid}"' in one and "EnabledState=3" in one

    service = conn.EnumerateInstanceNames(names.VSMS)[0]
    keys = ",".join(f'{k}="{v}"' for k, v in service.keybindings.items())
    out = wbemcli("cm", f"{base}:{names.VSMS}.{keys}",
                  f'ImportVirtualSystem.ImportDirectory="{dirs[0]}",GenerateNewID=true')
    assert "ImportVirtualSystem: 4096" in out, out
    m = _JOB_ID.search(out)
    assert m is not None, out
    job_path = f'{base}:{names.CONCRETE_JOB}.InstanceID="{m.group(1)}"'
    job = clients.follow(functools.partial(wbemcli, "gi", job_path), job_path)
    assert clients.job_state(job) == JobState.COMPLETED, job
    assert "PercentComplete=100" in job and "ErrorCode=0" in job

    found = conn.Associators(pywbem.CIMInstanceName(names.CONCRETE_JOB,
                                                    {"InstanceID": m.group(1)}),
                             AssocClass=names.AFFECTED_JOB_ELEMENT,
                             ResultClass=names.COMPUTER_SYSTEM)
    assert len(found) == 1 and found[0]["Name"] != guid
    served.guids.add(str(found[0]["Name"]).upper())
    assert f'Name="{found[0]["Name"]}"' in wbemcli("ei", f"{base}:{names.COMPUTER_SYSTEM}")


def test_wbemcli_errors(served: Served) -> None:
    base = f"{served.url}/{names.NAMESPACE}"
    missing = (f'{base}:{names.COMPUTER_SYSTEM}.CreationClassName="{names.COMPUTER_SYSTEM}",'
               f'Name="00000000-0000-0000-0000-000000000000"')
    res = clients.run(["wbemcli", "gi", missing], served.root)
    assert res.returncode != 0 and "CIM_ERR_NOT_FOUND" in res.stderr
    res = clients.run(["wbemcli", "ei", f"{base}:Msvm_NoSuchClass"], served.root)
    assert res.returncode != 0 and "CIM_ERR_INVALID_CLASS" in res.stderr
