"""A job record: what Msvm_ConcreteJob / Msvm_StorageJob show, as stored in SQLite."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from vsms.cim.enums import JobState

TIME_BEFORE_REMOVAL = timedelta(minutes=5)


@dataclass
class AffectedElement:
    """An element a job affects: Msvm_AffectedJobElement.AffectedElement."""

    classname: str
    keys: dict[str, str]
    effects: list[int] = field(default_factory=lambda: [5])


@dataclass
class JobRecord:
    instance_id: str
    classname: str  # Msvm_ConcreteJob or Msvm_StorageJob
    name: str  # display name, e.g. "Import Virtual System"
    description: str
    state: JobState = JobState.NEW
    percent: int = 0
    error_code: int = 0
    error_description: str = ""
    error_summary: str = ""
    job_status: str = ""  # JobStatus: free-form text of what the job is doing now
    time_submitted: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    time_of_last_state_change: datetime | None = None
    cancellable: bool = True
    storage_job_type: int = 0  # Msvm_StorageJob.Type
    owner: str = ""
    affected: list[AffectedElement] = field(default_factory=list)
    # out parameters made available when the job completes (method-specific, JSON-serialisable)
    result: dict[str, Any] = field(default_factory=dict)
