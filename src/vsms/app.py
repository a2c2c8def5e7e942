"""The composition root: builds settings, store, libvirt host, job manager, providers, registry.

Start-up order: state directory → store → libvirt → job manager (+ recovery of jobs a crash
interrupted) → registry. Shutdown runs the other way round.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from types import TracebackType

from vsms.auth.setup import audit_from_settings
from vsms.cim import names
from vsms.cim.schema import load_schema
from vsms.errors import VsmsError
from vsms.jobs.manager import JobManager
from vsms.operations.paths import StorageRoots
from vsms.operations.snapshots import tidy_after_crash
from vsms.operations.transitions import Transitions
from vsms.operations.undo import undo_handlers
from vsms.providers import build
from vsms.providers.cimv2 import install_cimv2
from vsms.providers.context import ServiceContext
from vsms.providers.interop import install_interop
from vsms.providers.registry import Registry
from vsms.settings import Settings
from vsms.store.db import Store
from vsms.virt.adopt import instance_id
from vsms.virt.host import VirtHost

log = logging.getLogger(__name__)


def adopt_configured(host: VirtHost, settings: Settings) -> None:
    """Adopt the domains the ``adopt_domains`` setting names (each adoption audited), and say
    in the log how many domains of an older vsms wait to be adopted."""
    audit = audit_from_settings(settings) if settings.adopt_domains else None
    for name in settings.adopt_domains:
        try:
            done = host.adopt(name)
        except VsmsError as err:
            log.error("adopt_domains: %s", err)
            continue
        if done.kind != "ours":
            assert audit is not None
            audit.write("adopt", user="", source="config", domain=done.name, guid=done.guid,
                        kind=done.kind, instance=host.instance)
            log.warning("adopted libvirt domain '%s' (%s, %s) as the adopt_domains setting says",
                        done.name, done.guid, done.kind)
    unowned = host.unowned()
    if unowned:
        log.warning("%d libvirt domain(s) carry vsms metadata without an instance ID (made by an "
                    "older vsms) and are not shown: adopt them with `vsms vm adopt NAME` (or "
                    "list them in the adopt_domains setting): %s",
                    len(unowned), ", ".join(unowned[:10]))


class Service:
    """One running vsms: ``service.registry`` is the Python API the WBEM front end also uses."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        for root in settings.storage_roots:
            Path(root).mkdir(parents=True, exist_ok=True)
        hostname = socket.gethostname().split(".")[0].upper() or "LOCALHOST"
        # which libvirt domains are this instance's (vsms.virt.adopt); made once, then kept
        self.instance_id = instance_id(settings.state_dir)
        self.store = Store(settings.database)
        try:
            self.host = VirtHost(settings.libvirt_uri, settings.domain_type,
                                 instance=self.instance_id)
            adopt_configured(self.host, settings)
        except Exception:
            self.store.close()
            raise
        self.jobs = JobManager(self.store, undo_handlers(self.host, self.store),
                               workers=settings.job_workers)
        self.context = ServiceContext(
            settings=settings, hostname=hostname, host=self.host, store=self.store,
            jobs=self.jobs, roots=StorageRoots(settings.storage_roots),
            transitions=Transitions())
        recovered = self.jobs.recover()
        if recovered:
            log.warning("recovered %d job(s) interrupted by a crash: %s",
                        len(recovered), ", ".join(recovered))
            tidy_after_crash(self.host, self.context.roots)  # snapshot merges left half-way
        self.registry = Registry(hostname)
        schema = load_schema(names.NAMESPACE)
        self.registry.add_namespace(names.NAMESPACE, schema.classes, schema.qualifiers)
        for provider in build.providers(self.context):
            self.registry.add_provider(names.NAMESPACE, provider)
        install_cimv2(self.registry, hostname)  # the host's identity (Win32_*)
        install_interop(self.registry)

    def close(self, timeout: float = 30.0) -> None:
        self.jobs.shutdown(timeout)
        self.host.close()
        self.store.close()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
