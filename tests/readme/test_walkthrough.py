"""The README's "Using it" block, run verbatim against a fresh ``vsms serve`` on qemu:///system.

The commands are taken from README.md as they are written and run by bash, one after the
other, in a pseudo-terminal (``vsms user add`` asks for the password there, as it would ask a
person). Only these are substituted: ``/var/lib/vsms/`` by a fresh directory of this test (its
``state`` and ``storage`` are the service's state directory and storage root, both empty), the
ports 5988/5989 by the ones the kernel chose for this service, ``.venv/bin/`` by the virtualenv
running the tests, and each ``...`` (the password the reader chooses) by a password. The
service's state directory, storage root and URL are given to the commands the way a reader's
would reach them on a default install: ``VSMS_STATE_DIR``, ``VSMS_STORAGE_ROOTS``, ``VSMS_URL``;
``REQUESTS_CA_BUNDLE`` and ``CURL_CA_BUNDLE`` are unset, as the README asks. The test fails if
any command fails.
"""

from __future__ import annotations

import os
import pty
import re
import secrets
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import pywbem

from tests.cli.served import Served, serving
from tests.conftest import QEMU_URI, fresh_dir
from vsms.cim import names

pytestmark = pytest.mark.qemu

README = Path(__file__).resolve().parents[2] / "README.md"
DEADLINE = 900.0
_PROMPTS = ("New password for admin: ", "Repeat it: ")


def using_it() -> list[str]:
    """The command lines of the first code block under "## Using it"."""
    text = README.read_text()
    section = text.split("\n## Using it\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"^```[^\n]*\n(.*?)^```", section, re.S | re.M)
    assert block is not None, "README.md: no code block under '## Using it'"
    return [line for line in block.group(1).splitlines() if line.strip()]


def substituted(lines: list[str], base: Path, served: Served, password: str) -> list[str]:
    venv = f"{Path(sys.executable).parent}/"
    out = []
    for line in lines:
        line = line.replace("/var/lib/vsms/", f"{base}/").replace(".venv/bin/", venv)
        line = line.replace("127.0.0.1:5988", f"127.0.0.1:{served.http_port}")
        line = line.replace("127.0.0.1:5989", f"127.0.0.1:{served.https_port}")
        out.append(re.sub(r"(?<=[= ])\.\.\.(?=\s|$)", password, line))
    return out


def run_in_terminal(script: str, env: dict[str, str], password: str) -> tuple[int, str]:
    """bash running ``script`` with a pseudo-terminal as stdin/stdout/stderr; answers the
    password prompts; returns (exit status, everything it wrote)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(["bash", "-c", script], stdin=slave, stdout=slave, stderr=slave,
                            env=env, cwd=README.parent, start_new_session=True)
    os.close(slave)
    seen = b""
    answered = 0
    deadline = time.monotonic() + DEADLINE
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the terminal closed: bash and its children are done
                    break
                if not chunk:
                    break
                seen += chunk
                text = seen.decode(errors="replace")
                if answered < len(_PROMPTS) and text.count(_PROMPTS[answered]) > 0 and \
                        text.rfind(_PROMPTS[answered]) > text.rfind("\n@@"):
                    os.write(master, password.encode() + b"\n")
                    answered += 1
            elif proc.poll() is not None:
                break
        else:
            raise AssertionError(f"the walk-through did not finish in {DEADLINE} s:\n"
                                 + seen.decode(errors="replace"))
        return proc.wait(60), seen.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(master)


@pytest.fixture
def fresh_service() -> Iterator[tuple[Path, Served]]:
    base = fresh_dir()
    (base / "storage").mkdir(mode=0o755)
    with serving(base, base / "state", [base / "storage"], QEMU_URI, test_user=False) as served:
        yield base, served


def test_the_block_is_the_walk_through() -> None:
    lines = using_it()
    assert lines[0].startswith(".venv/bin/vsms user add admin")
    assert any(" export vm1 " in f" {line} " for line in lines)
    assert any("pywbemcli -s https://" in line for line in lines)
    assert all(line.startswith((".venv/bin/", "export ")) for line in lines)


def test_every_command_of_the_readme_works_on_a_fresh_service(
        fresh_service: tuple[Path, Served]) -> None:
    base, served = fresh_service
    assert not (base / "state" / "users.json").exists()  # nobody can log in yet
    password = secrets.token_urlsafe(16)
    commands = substituted(using_it(), base, served, password)
    script = "\n".join(["set -eE", "trap 'echo \"@@ FAILED: $BASH_COMMAND\"' ERR",
                        *[f"echo '@@ {i}'\n{c}" for i, c in enumerate(commands)],
                        "echo '@@ ALL DONE'"])
    # a reader's shell: none of our settings, and no CA bundle override (requests would let
    # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE replace pywbemcli's --ca-certs, as the README says)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VSMS_", "PYWBEMCLI_"))
           and k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    env.update(VSMS_STATE_DIR=str(base / "state"), VSMS_STORAGE_ROOTS=str(base / "storage"),
               VSMS_URL=served.url, TERM="dumb")
    rc, output = run_in_terminal(script, env, password)
    assert rc == 0 and "@@ ALL DONE" in output, output

    # what the walk-through did is there: the export, the copy, the copy running
    storage = base / "storage"
    assert (storage / "exports" / "vm1" / "Virtual Hard Disks" / "vm1.vhd").is_file()
    assert (storage / "copies" / "vm1.vhd").is_file()
    assert f"vsms: created the export directory {storage}/exports" in output
    assert f"vsms: created the copy target directory {storage}/copies" in output
    assert re.search(r"Accelerator: (KVM|TCG) \(", output), output
    conn = pywbem.WBEMConnection(served.url, ("admin", password),
                                 default_namespace=names.NAMESPACE, timeout=60)
    vms = {str(v["ElementName"]): v for v in conn.EnumerateInstances(names.COMPUTER_SYSTEM)}
    assert vms["vm1-copy"]["EnabledState"] == 2 and vms["vm1"]["EnabledState"] == 3
    # the HTTPS pywbemcli line verified the certificate and counted the computer systems
    assert re.search(r"Msvm_ComputerSystem\s*\|?\s*\d+", output.split("@@ 10")[-1]), output
    # the README's other way: --no-verify (in the same shell: no CA bundle override)
    done = subprocess.run([f"{Path(sys.executable).parent}/pywbemcli", "-s", served.https_url,
                           "--no-verify", "-u", "admin", "-p", password, "-d", names.NAMESPACE,
                           "instance", "count", names.COMPUTER_SYSTEM], capture_output=True,
                          text=True, timeout=120, check=False, env=env)
    assert done.returncode == 0 and re.search(r"Msvm_ComputerSystem\s*\|?\s*\d+", done.stdout), done
