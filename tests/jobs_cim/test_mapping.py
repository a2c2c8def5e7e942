"""job_instance / error_instance / vhd_info_instance, without any backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import pywbem

from tests.jobs_cim.conftest import CONCRETE_JOB_PROPERTIES, STORAGE_JOB_PROPERTIES
from vsms.cim import names
from vsms.cim.embedded import parse_instance, serialize_instance
from vsms.cim.enums import JobState, ReturnCode, StorageJobType, VirtualHardDiskType
from vsms.cim.schema import load_classes
from vsms.disks.api import ImageInfo
from vsms.mapping.jobs import error_instance, job_instance
from vsms.mapping.vhd import vhd_info_instance
from vsms.model.job import JobRecord
from vsms.model.vm import ImageFormat

T0 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
ID = "8A496B9C-AF4D-4E98-BD3C-1128CD85320D"


def record(state: JobState = JobState.RUNNING, classname: str = names.CONCRETE_JOB,
           **kw: object) -> JobRecord:
    rec = JobRecord(instance_id=ID, classname=classname, name="Import Virtual System",
                    description="Importing /x", state=state, percent=40, time_submitted=T0,
                    start_time=T0 + timedelta(seconds=1),
                    time_of_last_state_change=T0 + timedelta(seconds=1))
    for k, v in kw.items():
        setattr(rec, k, v)
    return rec


@pytest.fixture(scope="module")
def classes() -> dict[str, pywbem.CIMClass]:
    return {c.classname.lower(): c for c in load_classes(names.NAMESPACE)}


def _check_types(inst: pywbem.CIMInstance, table: dict[str, tuple[str, bool]],
                 cls: pywbem.CIMClass) -> None:
    assert set(inst.properties) == set(table)
    declared = {n.lower(): p for n, p in cls.properties.items()}
    for name, (cim_type, is_array) in table.items():
        prop = inst.properties[name]
        assert (prop.type, bool(prop.is_array)) == (cim_type, is_array), name
        decl = declared[name.lower()]
        assert (decl.type, bool(decl.is_array)) == (cim_type, is_array), f"MOF {name}"


def test_concrete_job_has_every_documented_property(classes: dict[str, pywbem.CIMClass]) -> None:
    inst = job_instance(record(), now=T0 + timedelta(seconds=61))
    _check_types(inst, CONCRETE_JOB_PROPERTIES, classes[names.CONCRETE_JOB.lower()])
    assert inst.classname == names.CONCRETE_JOB
    assert inst.path.keybindings["InstanceID"] == ID
    assert inst["JobState"] == JobState.RUNNING and inst["PercentComplete"] == 40
    assert inst["OperationalStatus"] == [2] and inst["StatusDescriptions"] == ["OK"]
    assert inst["HealthState"] == 5 and inst["JobRunTimes"] == 1 and inst["LocalOrUtcTime"] == 2
    assert str(inst["TimeBeforeRemoval"]) == "00000000000500.000000:000"
    assert str(inst["ElapsedTime"]) == "00000000000100.000000:000"  # 60 s since StartTime
    assert inst["TimeSubmitted"].datetime == T0
    assert inst["Name"] == inst["ElementName"] == "Import Virtual System"
    assert inst["ErrorCode"] == 0 and inst["ErrorDescription"] is None
    assert inst["Cancellable"] is True


def test_elapsed_time_is_total_once_finished() -> None:
    rec = record(JobState.COMPLETED, end_time=T0 + timedelta(seconds=4), percent=100)
    inst = job_instance(rec, now=T0 + timedelta(hours=3))
    assert str(inst["ElapsedTime"]) == "00000000000003.000000:000"
    queued = record(JobState.NEW, start_time=None)
    assert str(job_instance(queued)["ElapsedTime"]) == "00000000000000.000000:000"
    assert job_instance(queued)["StartTime"] is None


def test_storage_job_adds_its_properties(classes: dict[str, pywbem.CIMClass]) -> None:
    rec = record(JobState.EXCEPTION, classname=names.STORAGE_JOB,
                 storage_job_type=int(StorageJobType.VHD_CREATION), error_code=32777,
                 error_description="qemu-img failed", result={"Child": "/s/a.vhd"})
    inst = job_instance(rec)
    _check_types(inst, STORAGE_JOB_PROPERTIES, classes[names.STORAGE_JOB.lower()])
    assert inst.classname == names.STORAGE_JOB and inst["Caption"] == "Storage Job"
    assert inst["Type"] == StorageJobType.VHD_CREATION
    assert inst["Child"] == "/s/a.vhd" and inst["Parent"] is None
    assert inst["JobCompletionStatusCode"] != 0
    ok = job_instance(record(JobState.COMPLETED, classname=names.STORAGE_JOB,
                             result={"Child": "/s/a.vhd"}))
    assert ok["JobCompletionStatusCode"] == 0 and ok["Child"] is None


@pytest.mark.parametrize("state", [JobState.NEW, JobState.RUNNING, JobState.COMPLETED])
def test_no_error_for_a_job_that_did_not_fail(state: JobState) -> None:
    assert error_instance(record(state)) is None


def test_error_of_a_failed_job_round_trips(classes: dict[str, pywbem.CIMClass]) -> None:
    rec = record(JobState.EXCEPTION, error_code=int(ReturnCode.FILE_NOT_FOUND),
                 error_description="disk /x.vhd is missing: put it back",
                 error_summary="Import failed")
    err = error_instance(rec)
    assert err is not None
    back = parse_instance(serialize_instance(err))
    assert back.classname == "CIM_Error"
    declared = {n.lower() for n in classes["cim_error"].properties}
    assert {n.lower() for n in back.properties} <= declared
    assert back["Message"] == "disk /x.vhd is missing: put it back"
    assert back["OwningEntity"] == "vsms" and back["MessageID"] == "VSMS32779"
    assert back["CIMStatusCode"] == 6 and back["CIMStatusCodeDescription"] == "CIM_ERR_NOT_FOUND"
    assert back["ErrorSourceFormat"] == 2 and ID in back["ErrorSource"]
    assert back["PerceivedSeverity"] in (2, 3, 4, 5) and back["ProbableCause"] == 73


def test_error_of_a_terminated_job() -> None:
    rec = record(JobState.TERMINATED, error_code=32768,
                 error_description="cancelled at the client's request")
    err = error_instance(rec)
    assert err is not None
    assert err["ErrorType"] == 1 and err["OtherErrorType"]
    assert err["Message"] == "cancelled at the client's request"


def test_vhd_info_instance(classes: dict[str, pywbem.CIMClass]) -> None:
    info = ImageInfo(path="/s/a.vhd", format=ImageFormat.VHD, type=VirtualHardDiskType.DYNAMIC,
                     virtual_size=1 << 30, file_size=4608, allocated=8192, parent_path="")
    inst = vhd_info_instance(info, in_use=True, in_saved_state=False)
    text = serialize_instance(inst)
    back = parse_instance(text)
    cls = classes[names.VHD_INFO.lower()]
    types = {n: p.type for n, p in cls.properties.items()}
    assert {n: p.type for n, p in back.properties.items()} == types
    assert back["Type"] == 3 and back["MaxInternalSize"] == 1 << 30 and back["FileSize"] == 4608
    assert back["InUse"] is True and back["InSavedState"] is False
    # nova reads PROPERTY/VALUE of every property: ParentPath must carry a VALUE element
    assert '<PROPERTY NAME="ParentPath" TYPE="string"><VALUE></VALUE>' in text
