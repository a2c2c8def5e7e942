"""``vsms serve``: settings sources, the self-signed certificate, start, refusal, clean stop."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import pywbem

from tests import hyperv
from tests.cli import served as srv
from tests.cli.conftest import Vsms
from tests.conftest import QEMU_URI
from vsms import certs
from vsms.cli.main import build_parser, main
from vsms.cli.serve import settings_from
from vsms.errors import InvalidParameter


def test_settings_come_from_config_env_and_flags(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "vsms.toml"
    config.write_text('listen = "0.0.0.0"\nhttp_port = 6000\nhttps_port = 6001\n'
                      'storage_roots = ["/srv/a", "/srv/b"]\nstate_dir = "/srv/state"\n')
    monkeypatch.setenv("VSMS_HTTPS_PORT", "6100")
    monkeypatch.setenv("VSMS_LIBVIRT_URI", "test:///default")
    args = build_parser().parse_args(["serve", "--config", str(config), "--http-port", "7000"])
    s = settings_from(args)
    assert (s.listen, s.http_port, s.https_port) == ("0.0.0.0", 7000, 6100)
    assert s.storage_roots == (Path("/srv/a"), Path("/srv/b"))
    assert s.libvirt_uri == "test:///default" and s.state_dir == Path("/srv/state")
    assert s.tls_cert is None and s.tls_key is None
    args = build_parser().parse_args(["serve", "--config", str(config), "--storage-root", "/x",
                                      "--storage-root", "/y", "--cert", "/c.pem",
                                      "--key", "/k.pem"])
    s = settings_from(args)
    assert s.storage_roots == (Path("/x"), Path("/y"))
    assert (s.tls_cert, s.tls_key) == (Path("/c.pem"), Path("/k.pem"))


def test_bad_config_is_refused_in_one_line(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("http_prot = 1\n")
    assert main(["serve", "--config", str(config)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown setting 'http_prot'" in err[0], err


def test_self_signed_certificate_is_made_once(tmp_path: Path) -> None:
    cert, key = certs.ensure_certificate(tmp_path / "state", "vsms-test-host")
    assert cert.is_file() and key.is_file()
    assert os.stat(key).st_mode & 0o777 == 0o600
    stamp = cert.stat().st_mtime_ns
    assert certs.ensure_certificate(tmp_path / "state", "vsms-test-host") == (cert, key)
    assert cert.stat().st_mtime_ns == stamp
    text = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-text"],
                          capture_output=True, text=True, timeout=30, check=True).stdout
    assert "DNS:vsms-test-host" in text and "IP Address:127.0.0.1" in text
    assert isinstance(certs.server_context(cert, key), ssl.SSLContext)
    assert not [p for p in cert.parent.iterdir() if p.name.startswith(".")]


def test_mismatched_or_missing_certificate_files_are_refused(tmp_path: Path) -> None:
    cert, key = certs.ensure_certificate(tmp_path / "a", "h")
    other_cert, _ = certs.ensure_certificate(tmp_path / "b", "h")
    with pytest.raises(InvalidParameter, match="belong together"):
        certs.server_context(other_cert, key)
    with pytest.raises(InvalidParameter, match="does not exist"):
        certs.server_context(tmp_path / "nope.pem", key)


def test_unreachable_libvirt_is_refused_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(srv.serve_command(
        "--state-dir", str(tmp_path / "state"), "--storage-root", str(tmp_path / "roots"),
        "--http-port", "0", "--https-port", "0",
        "--libvirt-uri", "qemu:///system?socket=/nonexistent/vsms-test.sock"),
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("vsms serve:")]
    assert len(lines) == 1 and "cannot start" in lines[0] and "libvirt" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.qemu
def test_taken_port_is_refused_in_one_line() -> None:
    root = srv.make_root()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            done = subprocess.run(srv.serve_command(
                "--state-dir", str(root / "state"), "--storage-root", str(root),
                "--libvirt-uri", QEMU_URI, "--https-port", "0", "--http-port", str(port)),
                capture_output=True, text=True, timeout=60, check=False)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("vsms serve:")]
    assert len(lines) == 1 and f"port {port}" in lines[0] and "--http-port" in lines[0], \
        done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.qemu
def test_unauthenticated_service_off_loopback_is_refused() -> None:
    root = srv.make_root()
    try:
        done = subprocess.run(srv.serve_command(
            "--state-dir", str(root / "state"), "--storage-root", str(root), "--libvirt-uri",
            QEMU_URI, "--http-port", "0", "--https-port", "0", "--no-auth", "--listen",
            "0.0.0.0"), capture_output=True, text=True, timeout=60, check=False)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("vsms serve:")]
    assert len(lines) == 1 and "authentication is off" in lines[0], done.stderr


@pytest.mark.qemu
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_http_and_https_then_stops_cleanly(sig: signal.Signals) -> None:
    root = srv.make_root()
    try:
        server = srv.start(root / "state", [root], QEMU_URI)
        try:
            assert Vsms.of(server).ok("vm", "list").rc == 0
            anonymous = Vsms(server.url)("vm", "list")
            assert anonymous.rc == 1 and "refused the credentials" in anonymous.err, anonymous
            wrong = Vsms(server.url, (server.user, "not-the-password"))("vm", "list")
            assert wrong.rc == 1 and "refused the credentials" in wrong.err, wrong
            cert = server.state_dir / "tls" / certs.CERT_FILE
            assert os.stat(server.state_dir / "tls" / certs.KEY_FILE).st_mode & 0o777 == 0o600
            if sig == signal.SIGTERM:  # HTTPS once is enough
                secure = Vsms.of(server, https=True)
                secure.ok("--ca-cert", str(cert), "vm", "list")
                secure.ok("--no-verify", "jobs")
                refused = secure("vm", "list")  # a self-signed certificate is not trusted
                assert refused.rc == 1 and "certificate" in refused.err.lower(), refused
        finally:
            rc = srv.stop(server.proc, sig)
        assert rc == 0, server.stderr()
        log = server.stderr()
        assert f"{signal.Signals(sig).name} received: shutting down" in log
        assert log.rstrip().endswith("stopped"), log[-500:]
        assert "Traceback" not in log
        assert "vsms serving" in (server.state_dir / "vsms.log").read_text()
    finally:
        srv.remove_vms(QEMU_URI, root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.qemu
def test_sigterm_during_a_job_records_it_as_interrupted() -> None:
    root = srv.make_root()
    try:
        server = srv.start(root / "state", [root], QEMU_URI)
        vsms = Vsms.of(server)
        disk = root / "big.vhd"
        hyperv.make_vhd(str(disk), "4G", data_mb=1536)  # long enough to stop mid-export
        name = f"busy-{root.name}"
        vsms.ok("vm", "create", name, "--memory", "64", "--disk", str(disk))
        target = root / "exports"
        target.mkdir()
        creds = (server.user, server.password)
        conn = pywbem.WBEMConnection(server.url, creds, default_namespace="root/virtualization")
        vm = next(i for i in conn.EnumerateInstances("Msvm_ComputerSystem")
                  if i["ElementName"] == name)
        service = conn.EnumerateInstanceNames("Msvm_VirtualSystemManagementService")[0]
        rv, out = conn.InvokeMethod("ExportVirtualSystem", service, ComputerSystem=vm.path,
                                    CopyVmState=True, ExportDirectory=str(target))
        assert rv == 4096
        job_id = out["Job"].keybindings["InstanceID"]
        deadline = time.monotonic() + 60
        while conn.GetInstance(out["Job"])["JobState"] in (2, 3):
            assert time.monotonic() < deadline, "the export job never started"
        assert conn.GetInstance(out["Job"])["JobState"] == 4  # still running: stop now
        assert srv.stop(server.proc) == 0, server.stderr()
        server = srv.start(root / "state", [root], QEMU_URI)
        try:
            again = pywbem.WBEMConnection(server.url, creds,
                                          default_namespace="root/virtualization")
            job = again.GetInstance(pywbem.CIMInstanceName("Msvm_ConcreteJob",
                                                           {"InstanceID": job_id}))
            assert job["JobState"] in (8, 10), job["JobState"]
            assert "shut down while this job was running" in job["ErrorDescription"]
            assert sorted(os.listdir(target)) == []  # the partial export was rolled back
        finally:
            assert srv.stop(server.proc) == 0
    finally:
        srv.remove_vms(QEMU_URI, root)
        shutil.rmtree(root, ignore_errors=True)
