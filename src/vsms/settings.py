"""Frozen settings, built once by app.py and passed explicitly (never a module global).

Sources, later ones win: built-in defaults, a TOML file (``--config``), ``VSMS_*`` environment
variables, command-line flags.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from vsms.errors import InvalidParameter


@dataclass(frozen=True)
class Settings:
    state_dir: Path = Path("/var/lib/vsms/state")
    storage_roots: tuple[Path, ...] = (Path("/var/lib/vsms/storage"),)
    libvirt_uri: str = "qemu:///system"
    # "auto" (KVM when libvirt offers it for x86_64 guests, else TCG), "kvm" or "qemu" (TCG)
    domain_type: str = "auto"
    listen: str = "127.0.0.1"
    http_port: int = 5988
    https_port: int = 5989
    # WS-Management (POST /wsman) listeners; 0 disables one
    wsman_http_port: int = 5985
    wsman_https_port: int = 5986
    job_workers: int = 4
    job_retention_seconds: int = 300
    # HTTPS certificate and key (PEM); None = a self-signed pair made in state_dir on first start
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # --- security (docs/security.md) ---
    # HTTP Basic authentication on both listeners; false only for local development, and then
    # every listener must be on a loopback address
    auth: bool = True
    # also accept local Linux accounts through PAM (service pam_service); role by group
    auth_pam: bool = False
    pam_service: str = "vsms"
    pam_administrator_group: str = "vsms-administrators"
    pam_operator_group: str = "vsms-operators"
    # role of a PAM user in neither group: administrator, operator, reader or none (refused)
    pam_default_role: str = "reader"
    # failed logins per source address before back-off starts, first and longest back-off
    auth_max_failures: int = 5
    auth_backoff_seconds: float = 1.0
    auth_backoff_max_seconds: float = 300.0
    # address of the plain-HTTP listener ("" = same as listen); it must be a loopback address
    # unless allow_remote_http is true (Basic credentials travel in clear text over HTTP)
    http_listen: str = ""
    allow_remote_http: bool = False
    # audit log (state_dir/audit.log): rotated at this size, this many old files kept
    audit_max_bytes: int = 10 * 1024 * 1024
    audit_backups: int = 5
    # connections (both listeners together): in all, per client address, not yet logged in
    # (the rest is kept for clients that have); seconds a connection that has not logged in
    # has to send its first request's headers; request-body bytes held at once
    max_connections: int = 256
    max_connections_per_source: int = 64
    max_unauthenticated_connections: int = 192
    login_timeout_seconds: float = 5.0
    max_buffered_body_bytes: int = 64 * 1024 * 1024
    # open pull-enumeration contexts: in all, per user (must stay below the total)
    pull_max_open: int = 256
    pull_max_per_user: int = 32

    # --- tenancy (docs/security.md): libvirt domains no vsms instance owns that this one
    # adopts at start (names or UUIDs; each adoption is audited)
    adopt_domains: tuple[str, ...] = ()
    # --- virtual switches (docs/switches.md): allow binding a switch to the interface that
    # carries the host's default route or management address (it takes the host off the net)
    switch_allow_management_interface: bool = False

    # seconds InitiateShutdown waits for the guest to turn the VM off before its job fails
    shutdown_timeout_seconds: float = 120.0
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def database(self) -> Path:
        return self.state_dir / "vsms.sqlite3"

    @property
    def users_file(self) -> Path:
        """The users of HTTP Basic authentication (argon2 hashes), managed by ``vsms user``."""
        return self.state_dir / "users.json"

    @property
    def audit_file(self) -> Path:
        """The append-only audit log of extrinsic method calls (JSON lines)."""
        return self.state_dir / "audit.log"


_ENV_PREFIX = "VSMS_"


def _coerce(name: str, value: Any) -> Any:
    if name in ("state_dir", "tls_cert", "tls_key"):
        return Path(value)
    if name == "adopt_domains":
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(str(v).strip() for v in items if str(v).strip())
    if name == "storage_roots":
        items = value.split(os.pathsep) if isinstance(value, str) else list(value)
        return tuple(Path(v) for v in items if v)
    if name in ("http_port", "https_port", "wsman_http_port", "wsman_https_port", "job_workers",
                "job_retention_seconds", "auth_max_failures", "audit_max_bytes", "audit_backups",
                *_LIMITS):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise InvalidParameter(f"setting {name} must be an integer, got {value!r}") from None
    if name in _BOOLS:
        return _boolean(name, value)
    if name in ("auth_backoff_seconds", "auth_backoff_max_seconds", "login_timeout_seconds",
                "shutdown_timeout_seconds"):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise InvalidParameter(f"setting {name} must be a number of seconds, "
                                   f"got {value!r}") from None
    return str(value)


_BOOLS = ("auth", "auth_pam", "allow_remote_http", "switch_allow_management_interface")
_LIMITS = ("max_connections", "max_connections_per_source", "max_unauthenticated_connections",
           "max_buffered_body_bytes", "pull_max_open", "pull_max_per_user")


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise InvalidParameter(f"setting {name} must be true or false, got {value!r}")


def load_settings(config_file: Path | None = None, env: Mapping[str, str] | None = None,
                  **overrides: Any) -> Settings:
    """Defaults < TOML file < environment (VSMS_*) < keyword overrides (None values ignored)."""
    names = {f.name for f in fields(Settings)} - {"extra"}
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            data = tomllib.loads(config_file.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidParameter(f"cannot read config file {config_file}: {exc}") from exc
        for key, val in data.items():
            key = key.replace("-", "_")
            if key not in names:
                raise InvalidParameter(f"unknown setting {key!r} in {config_file}")
            values[key] = _coerce(key, val)
    for key, val in (env if env is not None else os.environ).items():
        if key.startswith(_ENV_PREFIX) and key[len(_ENV_PREFIX):].lower() in names:
            name = key[len(_ENV_PREFIX):].lower()
            values[name] = _coerce(name, val)
    for key, val in overrides.items():
        if val is None:
            continue
        if key not in names:
            raise InvalidParameter(f"unknown setting {key!r}")
        values[key] = _coerce(key, val)
    return replace(Settings(), **values)
