"""pywbemcli, unmodified, as a subprocess against the real service."""

from __future__ import annotations

import functools
import re

import pytest
import pywbem

from tests.e2e import clients
from tests.e2e.conftest import Served
from vsms.cim import names
from vsms.cim.enums import JobState

pytestmark = pytest.mark.qemu

_JOB_REF = re.compile(r'^Job="(.*)"$', re.MULTILINE)


def test_pywbemcli(served: Served, conn: pywbem.WBEMConnection) -> None:
    vm, dirs = clients.exported_vm(served, conn, exports=2)
    guid = str(vm.keybindings["Name"])

    def cli(*args: str, pull: str = "either") -> str:
        res = clients.run([clients.PYWBEMCLI, "-s", served.url, "-d", names.NAMESPACE,
                           "--use-pull", pull, *args], served.root)
        assert res.returncode == 0, (args, res.stdout, res.stderr)
        return res.stdout

    listed = cli("class", "enumerate", "--no", "--di").split()
    assert {names.COMPUTER_SYSTEM, names.CONCRETE_JOB, names.VSMS} <= set(listed)
    job_class = cli("class", "get", names.CONCRETE_JOB)
    assert "class Msvm_ConcreteJob : CIM_ConcreteJob" in job_class
    assert "uint16 JobState" in job_class and "ValueMap" in job_class
    systems = cli("instance", "enumerate", names.COMPUTER_SYSTEM, pull="yes")
    assert f'Name = "{guid}";' in systems and f'ElementName = "src-{served.token}";' in systems
    vm_uri = f'{names.COMPUTER_SYSTEM}.CreationClassName="{names.COMPUTER_SYSTEM}",Name="{guid}"'
    assoc = cli("instance", "associators", vm_uri, "--rc", names.VSSD, pull="yes")
    assert "instance of Msvm_VirtualSystemSettingData" in assoc
    assert f'InstanceID = "Microsoft:{guid}";' in assoc
    spaces = cli("namespace", "list")
    assert "root/virtualization" in spaces and "interop" in spaces

    service = conn.EnumerateInstanceNames(names.VSMS)[0]
    service_uri = service.to_wbem_uri().split(":", 1)[1]  # no host or namespace
    invocations = [
        ("class", "invokemethod", names.VSMS, "ImportVirtualSystem"),
        ("instance", "invokemethod", service_uri, "ImportVirtualSystem"),
    ]
    imported = set()
    for command, directory in zip(invocations, dirs, strict=True):
        out = cli(*command, "-p", f"ImportDirectory={directory}", "-p", "GenerateNewID=true")
        assert "ReturnValue=4096" in out, out
        m = _JOB_REF.search(out)
        assert m is not None, out
        job_uri = m.group(1).replace('\\"', '"')
        assert names.CONCRETE_JOB in job_uri
        job = clients.follow(functools.partial(cli, "instance", "get", job_uri), job_uri)
        assert clients.job_state(job) == JobState.COMPLETED, job
        assert "PercentComplete = 100;" in job and "ErrorCode = 0;" in job
        found = cli("instance", "associators", job_uri, "--ac", names.AFFECTED_JOB_ELEMENT,
                    "--rc", names.COMPUTER_SYSTEM, "--no")
        new = re.findall(r'Name="([0-9A-F-]{36})"', found)
        assert len(new) == 1 and new[0] != guid, found
        imported.add(new[0])
    assert len(imported) == 2
    served.guids.update(imported)


def test_pywbemcli_reports_errors(served: Served) -> None:
    def fails(*args: str) -> str:
        res = clients.run([clients.PYWBEMCLI, "-s", served.url, "-d", names.NAMESPACE, *args],
                          served.root)
        assert res.returncode != 0, (args, res.stdout)
        return res.stderr

    assert "CIM_ERR_NOT_FOUND" in fails("class", "get", "Msvm_NoSuchClass")
    missing = f'{names.COMPUTER_SYSTEM}.CreationClassName="{names.COMPUTER_SYSTEM}",' \
              f'Name="00000000-0000-0000-0000-000000000000"'
    assert "CIM_ERR_NOT_FOUND" in fails("instance", "get", missing)
