"""root/cimv2 over CIM-XML: a real ``vsms serve`` on qemu:///system, read with pywbem and
pywbemcli by an administrator, a reader and a reader scoped to one VM scope."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import pywbem

from tests.cli.served import Served, add_user, make_root, serving
from tests.conftest import QEMU_URI
from vsms.providers.hostfacts import HostFacts

NS = "root/cimv2"
CLASSES = ("Win32_ComputerSystem", "Win32_ComputerSystemProduct", "Win32_OperatingSystem",
           "Win32_Processor")
PYWBEMCLI = str(Path(sys.executable).with_name("pywbemcli"))


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Served, dict[str, str]]]:
    root = make_root()
    state = root / "state"
    state.mkdir()
    others = {"reader1": add_user(state, "reader1", "reader")}
    subprocess.run([sys.executable, "-m", "vsms.cli.main", "user", "add", "tenant1", "--role",
                    "reader", "--scope", "tenant-a", "--password-stdin", "--state-dir",
                    str(state)], input="tenant-pass-1\n", text=True, capture_output=True,
                   timeout=60, check=True)
    others["tenant1"] = "tenant-pass-1"
    with serving(root, state, [root], QEMU_URI) as server:
        yield server, others


def connect(served: tuple[Served, dict[str, str]], user: str | None = None
            ) -> pywbem.WBEMConnection:
    server, others = served
    creds = (server.user, server.password) if user is None else (user, others[user])
    return pywbem.WBEMConnection(server.url, creds, default_namespace=NS, timeout=60)


def test_host_identity_values(served: tuple[Served, dict[str, str]]) -> None:
    conn = connect(served)
    facts = HostFacts()
    (cs,) = conn.EnumerateInstances("Win32_ComputerSystem")
    host = cs["Name"]
    assert host == os.uname().nodename.split(".")[0].upper()
    assert cs.path.keybindings == {"Name": host}
    assert cs["DNSHostName"] == os.uname().nodename.split(".")[0]
    assert cs["Domain"]  # DNS domain or WORKGROUP
    procs = facts.processors()
    assert cs["NumberOfProcessors"] == len(procs)
    assert cs["NumberOfLogicalProcessors"] == os.cpu_count()
    assert cs["TotalPhysicalMemory"] == facts.memory().total_kib * 1024  # type: ignore[operator]
    assert cs.properties["TotalPhysicalMemory"].type == "uint64"
    assert cs.properties["NumberOfProcessors"].type == "uint32"

    (prod,) = conn.EnumerateInstances("Win32_ComputerSystemProduct")
    assert prod["UUID"] == facts.product().uuid
    assert set(prod.path.keybindings) == {"IdentifyingNumber", "Name", "Version"}

    (osi,) = conn.EnumerateInstances("Win32_OperatingSystem")
    assert osi["Caption"] == facts.os_caption() and osi["Version"] == os.uname().release
    assert osi["BuildNumber"] == os.uname().version and osi["CSName"] == host
    boot = osi["LastBootUpTime"]
    assert isinstance(boot, pywbem.CIMDateTime)
    assert boot.datetime == facts.boot_time()
    assert osi["TotalVisibleMemorySize"] == facts.memory().total_kib
    assert 0 < osi["FreePhysicalMemory"] <= osi["TotalVisibleMemorySize"]

    cpus = conn.EnumerateInstances("Win32_Processor")
    assert [c["DeviceID"] for c in cpus] == [f"CPU{i}" for i in range(len(procs))]
    assert sum(c["NumberOfLogicalProcessors"] for c in cpus) == os.cpu_count()
    assert all(c["NumberOfCores"] >= 1 and c["Name"] == procs[0].model for c in cpus)
    assert cpus[0]["MaxClockSpeed"] == procs[0].max_mhz

    # GetInstance by the enumerated paths; a wrong key is not found
    for inst in (cs, prod, osi, *cpus):
        got = conn.GetInstance(inst.path)
        assert got.path.keybindings == inst.path.keybindings
    with pytest.raises(pywbem.CIMError) as err:
        conn.GetInstance(pywbem.CIMInstanceName("Win32_ComputerSystem", {"Name": "OTHER"}))
    assert err.value.status_code == pywbem.CIM_ERR_NOT_FOUND


def test_data_file_declared_and_empty(served: tuple[Served, dict[str, str]]) -> None:
    conn = connect(served)
    cls = conn.GetClass("CIM_DataFile", LocalOnly=False)
    assert cls.properties["Name"].qualifiers["Key"].value is True
    assert conn.EnumerateInstances("CIM_DataFile") == []
    assert conn.ExecQuery("WQL", "SELECT * FROM CIM_DataFile WHERE Name = 'c:\\\\boot.ini'") \
        == []
    assert conn.ExecQuery("WQL", "SELECT Name, Version, Manufacturer FROM CIM_DataFile") == []
    with pytest.raises(pywbem.CIMError) as err:
        conn.GetInstance(pywbem.CIMInstanceName("CIM_DataFile", {"Name": "/etc/passwd"}))
    assert err.value.status_code == pywbem.CIM_ERR_NOT_FOUND
    # a query over a Win32 class answers from the same providers
    (osi,) = conn.ExecQuery("WQL", "SELECT Caption, Version FROM Win32_OperatingSystem")
    assert osi["Version"] == os.uname().release


def test_interop_lists_cimv2(served: tuple[Served, dict[str, str]]) -> None:
    conn = connect(served)
    names = {i["Name"] for i in conn.EnumerateInstances("CIM_Namespace", namespace="interop")}
    assert {"root/cimv2", "root/virtualization", "interop"} <= names


@pytest.mark.parametrize("user", ["reader1", "tenant1"])
def test_readers_and_scoped_users_read_it(served: tuple[Served, dict[str, str]],
                                          user: str) -> None:
    conn = connect(served, user)
    for cn in CLASSES:
        assert len(conn.EnumerateInstances(cn)) >= 1, cn
    (cs,) = conn.EnumerateInstances("Win32_ComputerSystem")
    assert conn.GetInstance(cs.path)["Name"] == cs["Name"]


def test_pywbemcli(served: tuple[Served, dict[str, str]], tmp_path: Path) -> None:
    server, _ = served
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYWBEMCLI")}
    env["HOME"] = str(tmp_path)

    def cli(*args: str) -> str:
        res = subprocess.run([PYWBEMCLI, "-s", server.url, "-u", server.user,
                              f"--password={server.password}", *args],
                             capture_output=True, text=True, timeout=120, cwd=tmp_path,
                             env=env, check=False)
        assert res.returncode == 0, (args, res.stdout, res.stderr)
        return res.stdout
    assert "root/cimv2" in cli("namespace", "list")
    out = cli("-d", NS, "instance", "enumerate", "Win32_OperatingSystem")
    assert "instance of Win32_OperatingSystem" in out and os.uname().release in out
    names = cli("-d", NS, "class", "enumerate", "--no", "--di").split()
    assert {"Win32_ComputerSystem", "CIM_DataFile", *CLASSES} <= set(names)
