"""pywbemcli and sblim wbemcli, unmodified, as subprocesses against the server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.wbem.model import NS
from vsms.wbem.server import WbemServer

PYWBEMCLI = str(Path(sys.executable).with_name("pywbemcli"))
SVC = ('TST_Service.CreationClassName="TST_Service",Name="svc",'
       'SystemCreationClassName="TST_System",SystemName="host1"')
VM1 = 'TST_VirtualSystem.CreationClassName="TST_VirtualSystem",Name="vm1"'


def run(args: list[str], home: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    # requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override a client's own verify setting
    drop = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYWBEMCLI") and k not in drop}
    env["HOME"] = str(home)
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=home,
                          env=env, check=False)


@pytest.fixture
def cli(server: WbemServer, tmp_path: Path):
    url = f"http://127.0.0.1:{server.ports['http']}"

    def call(*args: str, pull: str = "either") -> str:
        res = run([PYWBEMCLI, "-s", url, "-d", NS, "-U", pull, *args], tmp_path)
        assert res.returncode == 0, (args, res.stdout, res.stderr)
        return res.stdout
    return call


def test_pywbemcli(cli) -> None:
    names = cli("class", "enumerate", "--no", "--di").split()
    assert len(names) == 9 and "TST_VirtualSystem" in names
    cls = cli("class", "get", "TST_Service")
    assert "class TST_Service : TST_ManagedElement" in cls
    assert "TST_Job REF Job" in cls and "EmbeddedInstance" in cls
    for pull in ("either", "yes", "no"):
        out = cli("instance", "enumerate", "TST_VirtualSystem", pull=pull)
        assert out.count("instance of TST_VirtualSystem") == 3 and 'ElementName = "vm 2"' in out
        assoc = cli("instance", "associators", VM1, pull=pull)
        assert 'InstanceID = "sd-1"' in assoc and "inner-1" in assoc
    out = cli("class", "invokemethod", "TST_Service", "Version")
    assert "ReturnValue=0" in out and 'Text="1.2.3"' in out
    out = cli("instance", "invokemethod", SVC, "DestroySystem", "-p", f"AffectedSystem={VM1}")
    assert "ReturnValue=4096" in out and 'root/test:TST_Job.InstanceID=\\"job-1\\"' in out
    out = cli("namespace", "list")
    assert "interop" in out and "root/test" in out
    assert "vsms" in cli("server", "brand")


def test_pywbemcli_reports_errors(server: WbemServer, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{server.ports['http']}"
    res = run([PYWBEMCLI, "-s", url, "-d", NS, "class", "get", "TST_Nope"], tmp_path)
    assert res.returncode != 0 and "CIM_ERR_NOT_FOUND" in res.stderr
    res = run([PYWBEMCLI, "-s", url, "-d", NS, "instance", "invokemethod", SVC, "Echo",
               "-p", "U8=300"], tmp_path)
    assert res.returncode != 0 and ("300" in res.stderr or "U8" in res.stderr)


needs_wbemcli = pytest.mark.skipif(shutil.which("wbemcli") is None,
                                   reason="sblim wbemcli is not installed")


@needs_wbemcli
def test_wbemcli(server: WbemServer, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{server.ports['http']}/root/test"

    def wbemcli(*args: str) -> str:
        res = run(["wbemcli", *args], tmp_path)
        assert res.returncode == 0, (args, res.stdout, res.stderr)
        return res.stdout

    out = wbemcli("ecn", base)
    assert f"{base[7:]}:TST_VirtualSystem" in out and len(out.split()) == 9
    out = wbemcli("ei", f"{base}:TST_VirtualSystem")
    assert out.count(":TST_VirtualSystem.") == 3 and 'ElementName="vm 1"' in out
    out = wbemcli("gi", f"{base}:{VM1}")
    assert 'Name="vm1"' in out and "MemoryMB=512" in out and 'Tags="a","b"' in out
    out = wbemcli("gc", f"{base}:TST_Service")
    assert "SystemName=" in out
    ref = f"127.0.0.1:{server.ports['http']}/root/test:{VM1}"
    out = wbemcli("cm", f"{base}:{SVC}", f"DestroySystem.AffectedSystem={ref}")
    assert "DestroySystem: 4096" in out and 'TST_Job.InstanceID="job-1"' in out
    out = wbemcli("cm", f"{base}:{SVC}", 'Echo.U8=5,Flag=true,Texts="x","y",Numbers=1,2')
    assert "Echo: 0" in out and "U8Out (uint8): 5" in out and "TextsOut (string): x,y" in out


@needs_wbemcli
def test_wbemcli_errors(server: WbemServer, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{server.ports['http']}/root/test"
    res = run(["wbemcli", "cm", f"{base}:{SVC}", "Echo.U8=500"], tmp_path)
    assert res.returncode != 0 and "CIM_ERR_INVALID_PARAMETER" in res.stderr
    assert "U8" in res.stderr
    res = run(["wbemcli", "gi", f"{base}:{VM1.replace('vm1', 'nope')}"], tmp_path)
    assert res.returncode != 0 and "CIM_ERR_NOT_FOUND" in res.stderr
