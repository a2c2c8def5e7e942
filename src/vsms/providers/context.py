"""What every provider may use: the backends and shared state, built by app.py."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

from vsms.jobs.manager import JobManager
from vsms.operations.paths import StorageRoots
from vsms.operations.transitions import Transitions
from vsms.settings import Settings
from vsms.store.db import Store
from vsms.virt.host import VirtHost


@dataclass(frozen=True)
class ServiceContext:
    settings: Settings
    hostname: str  # SystemName of the services and the host part of returned paths
    host: VirtHost
    store: Store
    jobs: JobManager
    roots: StorageRoots
    transitions: Transitions


#: The user on whose behalf the current call runs ("" without authentication): set by the WBEM
#: dispatcher around an extrinsic method, recorded as the Owner of the jobs it starts.
caller: ContextVar[str] = ContextVar("vsms_caller", default="")

#: Which VMs the caller may see (VM GUID -> visible), set by the scoped registry
#: (``vsms.auth.scopes``) around each method a scoped user calls; None: every VM. A method that
#: lists VMs on its own (GetSummaryInformation with NULL SettingData) shows only visible ones.
visible_vm: ContextVar[Callable[[str], bool] | None] = ContextVar("vsms_visible_vm",
                                                                   default=None)
