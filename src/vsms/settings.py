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
    # "qemu" (TCG, always works), "kvm", or "auto" (kvm when /dev/kvm is usable)
    domain_type: str = "qemu"
    listen: str = "127.0.0.1"
    http_port: int = 5988
    https_port: int = 5989
    job_workers: int = 4
    job_retention_seconds: int = 300
    # HTTPS certificate and key (PEM); None = a self-signed pair made in state_dir on first start
    tls_cert: Path | None = None
    tls_key: Path | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def database(self) -> Path:
        return self.state_dir / "vsms.sqlite3"


_ENV_PREFIX = "VSMS_"


def _coerce(name: str, value: Any) -> Any:
    if name in ("state_dir", "tls_cert", "tls_key"):
        return Path(value)
    if name == "storage_roots":
        items = value.split(os.pathsep) if isinstance(value, str) else list(value)
        return tuple(Path(v) for v in items if v)
    if name in ("http_port", "https_port", "job_workers", "job_retention_seconds"):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise InvalidParameter(f"setting {name} must be an integer, got {value!r}") from None
    return str(value)


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
