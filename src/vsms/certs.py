"""The HTTPS listener's certificate: a self-signed one made with the ``openssl`` CLI on first start.

``scripts/setup.sh`` installs ``openssl``; no Python crypto package is needed. The key and the
certificate are written under temporary names and renamed into place only when both exist, so
an interrupted first start never leaves a half-made pair behind.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from pathlib import Path

from vsms.errors import InvalidParameter, SystemNotAvailable

CERT_FILE = "vsms-cert.pem"
KEY_FILE = "vsms-key.pem"
_DAYS = 3650
_TIMEOUT = 60.0


def default_paths(state_dir: Path) -> tuple[Path, Path]:
    """Where the self-signed certificate and its key live: (cert, key) in ``state_dir/tls``."""
    tls = state_dir / "tls"
    return tls / CERT_FILE, tls / KEY_FILE


def make_self_signed(cert: Path, key: Path, host_name: str, *,
                     timeout: float = _TIMEOUT) -> None:
    """Create a self-signed certificate for ``host_name`` (also valid for localhost, 127.0.0.1
    and ::1) and its private key (mode 0600). Raises SystemNotAvailable when openssl is missing
    or fails; never leaves a partial pair behind."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise SystemNotAvailable("the openssl command is not installed, so no certificate can be "
                                 "made for HTTPS: install it (apt-get install openssl) or pass "
                                 "--cert and --key")
    cert.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp_cert = cert.with_name(f".{cert.name}.{os.getpid()}.tmp")
    tmp_key = key.with_name(f".{key.name}.{os.getpid()}.tmp")
    names = [f"DNS:{host_name}", "DNS:localhost", "IP:127.0.0.1", "IP:::1"]
    cmd = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
           "-days", str(_DAYS), "-subj", f"/O=vsms/CN={host_name}",
           "-addext", "subjectAltName=" + ",".join(dict.fromkeys(names)),
           "-keyout", str(tmp_key), "-out", str(tmp_cert)]
    old_umask = os.umask(0o077)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise SystemNotAvailable(
                f"openssl could not make a self-signed certificate in {cert.parent}: "
                f"{detail[-1] if detail else 'exit status ' + str(done.returncode)}; "
                "pass --cert and --key to use an existing certificate")
        os.chmod(tmp_key, 0o600)
        os.chmod(tmp_cert, 0o600)  # the state directory is private (docs/security.md)
        os.replace(tmp_key, key)
        os.replace(tmp_cert, cert)
    except subprocess.TimeoutExpired:
        raise SystemNotAvailable(f"openssl did not make the certificate within {timeout:.0f} s: "
                                 "pass --cert and --key to use an existing certificate") from None
    except OSError as exc:
        raise SystemNotAvailable(f"cannot write the certificate into {cert.parent}: "
                                 f"{exc.strerror or exc}; check --state-dir") from exc
    finally:
        os.umask(old_umask)
        for leftover in (tmp_cert, tmp_key):
            leftover.unlink(missing_ok=True)


def ensure_certificate(state_dir: Path, host_name: str) -> tuple[Path, Path]:
    """The (cert, key) pair in the state directory, made on first use."""
    cert, key = default_paths(state_dir)
    if not (cert.is_file() and key.is_file()):
        make_self_signed(cert, key, host_name)
    return cert, key


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A TLS server context for ``cert``/``key``; InvalidParameter names the file at fault."""
    for what, path in (("certificate", cert), ("key", key)):
        if not path.is_file():
            raise InvalidParameter(f"the TLS {what} file {path} does not exist: fix --cert/--key "
                                   "or leave both out to use a self-signed certificate")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        raise InvalidParameter(f"cannot use the TLS certificate {cert} with the key {key}: "
                               f"{exc}; check that they are PEM files that belong together"
                               ) from exc
    return ctx
