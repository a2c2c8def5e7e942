"""What the Hyper-V virtualization samples share, for their Python ports in this directory.

The C# samples use the ``Utility`` class of "Common Utilities for the Virtualization Samples";
the VBScript samples each repeat the same few helpers (``WMIJobCompleted``, ``WriteLog``,
``GetComputerSystem``). Both are here, over pywbem against a running vsms instead of WMI:

* the service URL comes from ``$VSMS_URL`` (default http://127.0.0.1:5988), credentials from
  ``$VSMS_USER``/``$VSMS_PASSWORD`` when set; ``$VSMS_NO_VERIFY=1`` accepts a self-signed
  HTTPS certificate;
* jobs are polled once a second, printing ``In progress... N% completed.`` as the originals do,
  while they are Starting or Running (or New: queued for a worker), but never for longer than
  ``$VSMS_SAMPLE_TIMEOUT`` seconds (default 3600);
* an error the original would not have handled (a .NET exception, a VBScript run-time error)
  ends the program with a message on stderr and exit status 1.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import pywbem

NAMESPACE = "root/virtualization"
DEFAULT_URL = "http://127.0.0.1:5988"


class ReturnCode:
    """The C# samples' ReturnCode class."""

    Completed = 0
    Started = 4096
    Failed = 32768
    AccessDenied = 32769
    NotSupported = 32770
    Unknown = 32771
    Timeout = 32772
    InvalidParameter = 32773
    SystemInUse = 32774
    InvalidState = 32775
    IncorrectDataType = 32776
    SystemNotAvailable = 32777
    OutofMemory = 32778


class JobState:
    New = 2
    Starting = 3
    Running = 4
    Suspended = 5
    ShuttingDown = 6
    Completed = 7
    Terminated = 8
    Killed = 9
    Exception = 10
    Service = 11


# The originals poll while the job is Starting or Running. vsms also shows a job that waits for
# a free worker as New (Hyper-V reports it as Starting), so New counts as under way here too.
_UNDER_WAY = (JobState.New, JobState.Starting, JobState.Running)


class SampleError(Exception):
    """What the original would have died of (an unhandled exception or run-time error)."""


def connect() -> pywbem.WBEMConnection:
    """The 'root\\virtualization' scope: a pywbem connection to $VSMS_URL."""
    user = os.environ.get("VSMS_USER")
    creds = (user, os.environ.get("VSMS_PASSWORD", "")) if user else None
    no_verify = os.environ.get("VSMS_NO_VERIFY") == "1"
    conn = pywbem.WBEMConnection(os.environ.get("VSMS_URL", DEFAULT_URL), creds,
                                 default_namespace=NAMESPACE, timeout=120,
                                 no_verification=no_verify)
    if no_verify:  # else $REQUESTS_CA_BUNDLE would turn verification back on
        conn.session.trust_env = False
    return conn


def _deadline() -> float:
    return time.monotonic() + float(os.environ.get("VSMS_SAMPLE_TIMEOUT", "3600"))


def wmi_path(path: pywbem.CIMInstanceName) -> str:
    """The WMI form of an object path (what ``ManagementObject.Path.Path`` and ``Path_.Path``
    give): \\\\HOST\\root\\virtualization:Class.Key="value",..."""
    def quote(value: Any) -> str:
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, int):
            return str(value)
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    keys = ",".join(f"{k}={quote(v)}" for k, v in path.keybindings.items())
    ns = (path.namespace or NAMESPACE).replace("/", "\\")
    return f"\\\\{path.host or '.'}\\{ns}:{path.classname}.{keys}"


def get_text(inst: pywbem.CIMInstance) -> str:
    """``GetText(TextFormat.CimDtd20)`` / ``GetText_(1)``: the instance as one CIM-XML
    INSTANCE element (without its path, which pywbem would otherwise wrap around it)."""
    bare = inst.copy()
    bare.path = None
    text: str = bare.tocimxmlstr()
    return text


def new_instance(conn: pywbem.WBEMConnection, classname: str,
                 values: Mapping[str, Any]) -> pywbem.CIMInstance:
    """``new ManagementClass(scope, path).CreateInstance()`` with ``values`` set: every
    property of the class, NULL unless given."""
    cls = conn.GetClass(classname, LocalOnly=False)
    inst = pywbem.CIMInstance.from_class(cls, include_path=False, include_missing_properties=True)
    put(inst, values)
    return inst


def put(inst: pywbem.CIMInstance, values: Mapping[str, Any]) -> None:
    """Set property values the way WMI does: converted to each property's declared type."""
    for name, value in values.items():
        prop = next((p for n, p in inst.properties.items() if n.lower() == name.lower()), None)
        if prop is None:
            inst[name] = value
        else:
            prop.value = value


def out_param(out: Mapping[str, Any], name: str) -> Any:
    for key, value in out.items():
        if key.lower() == name.lower():
            return value
    return None


# ---------------------------------------------------------------------- the C# Utility class
def get_service_object(conn: pywbem.WBEMConnection, service_name: str) -> pywbem.CIMInstance:
    """``Utility.GetServiceObject``: the (last) instance of the service class."""
    services = conn.EnumerateInstances(service_name)
    service = services[-1] if services else None
    if service is None:
        raise SampleError(f"System.NullReferenceException: no instance of {service_name}")
    return service


def get_target_computer(conn: pywbem.WBEMConnection,
                        vm_element_name: str) -> pywbem.CIMInstance | None:
    """``Utility.GetTargetComputer``: the first VM whose ElementName matches, or None."""
    query = f"select * from Msvm_ComputerSystem Where ElementName = '{vm_element_name}'"
    for computer in conn.ExecQuery("WQL", query):
        return computer
    return None


def require(obj: Any, what: str) -> Any:
    """Where the C# sample dereferences something that may be null."""
    if obj is None:
        raise SampleError(f"System.NullReferenceException: Object reference not set to an "
                          f"instance of an object ({what} is null)")
    return obj


def job_completed(conn: pywbem.WBEMConnection, out: Mapping[str, Any]) -> bool:
    """``Utility.JobCompleted``: poll the job each second; print why it failed."""
    job_path = out_param(out, "Job")
    job = conn.GetInstance(job_path)
    deadline = _deadline()
    while job["JobState"] in _UNDER_WAY:
        print(f"In progress... {job['PercentComplete']}% completed.", flush=True)
        if time.monotonic() > deadline:
            raise SampleError(f"job {job['InstanceID']} did not finish before "
                              "$VSMS_SAMPLE_TIMEOUT")
        time.sleep(1.0)
        job = conn.GetInstance(job_path)
    if job["JobState"] != JobState.Completed:
        print(f"Error Code:{job['ErrorCode']}")
        print(f"ErrorDescription: {job['ErrorDescription'] or ''}")
        return False
    return True


def run_csharp(main: Callable[[list[str]], None]) -> NoReturn:
    """Run a C# sample's Main: exit 0 when it returns (as a void Main does), 1 on an
    exception it did not handle."""
    try:
        main(sys.argv[1:])
    except (SampleError, pywbem.Error, OSError) as err:
        print(f"Unhandled exception. {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)


# ---------------------------------------------------------------------- the VBScript helpers
_WBEM_ERRORS = {  # CIM status -> (WMI error number, description), as VBScript's Err shows them
    pywbem.CIM_ERR_FAILED: (0x80041001, "Generic failure"),
    pywbem.CIM_ERR_ACCESS_DENIED: (0x80041003, "Access denied"),
    pywbem.CIM_ERR_INVALID_NAMESPACE: (0x8004100E, "Invalid namespace"),
    pywbem.CIM_ERR_INVALID_PARAMETER: (0x80041008, "Invalid parameter"),
    pywbem.CIM_ERR_INVALID_CLASS: (0x80041010, "Invalid class"),
    pywbem.CIM_ERR_NOT_FOUND: (0x80041002, "Not found"),
    pywbem.CIM_ERR_NOT_SUPPORTED: (0x8004100C, "Not supported"),
    pywbem.CIM_ERR_INVALID_QUERY: (0x80041017, "Invalid query"),
}
NOT_FOUND = 0x80041002


class VbsError(Exception):
    """A VBScript ``Err``: number (as the signed value VBScript prints) and description."""

    def __init__(self, number: int, description: str) -> None:
        super().__init__(description)
        self.number = number - (1 << 32) if number >= 1 << 31 else number
        self.description = description

    @classmethod
    def from_wbem(cls, err: pywbem.Error) -> VbsError:
        if isinstance(err, pywbem.CIMError):
            number, text = _WBEM_ERRORS.get(err.status_code, (0x80041001, "Generic failure"))
            return cls(number, f"{text}: {err.status_description}")
        return cls(0x800706BA, f"The RPC server is unavailable: {err}")


class VbsScript:
    """The objects and helpers every VBScript sample sets up in Main."""

    def __init__(self, log_name: str) -> None:
        self.log_file = Path.cwd() / log_name
        self.conn = connect()

    def echo(self, line: str) -> None:
        """``WScript.Echo``."""
        print(line, flush=True)

    def write_log(self, line: str) -> None:
        """``WriteLog``: echo the line and append it to the sample's log file."""
        self.echo(line)
        with open(self.log_file, "a", encoding="utf-8") as log:
            log.write(line + "\n")

    def item_index0(self, query: str) -> pywbem.CIMInstance:
        """``objWMIService.ExecQuery(query).ItemIndex(0)``; VbsError when there is none."""
        try:
            found = self.conn.ExecQuery("WQL", query)
        except pywbem.Error as err:
            raise VbsError.from_wbem(err) from err
        if not found:
            raise VbsError(NOT_FOUND, "Not found")
        first: pywbem.CIMInstance = found[0]
        return first

    def query(self, query: str) -> list[pywbem.CIMInstance]:
        found: list[pywbem.CIMInstance] = self.conn.ExecQuery("WQL", query)
        return found

    def management_service(self) -> pywbem.CIMInstance:
        return self.item_index0("select * from Msvm_VirtualSystemManagementService")

    def get_computer_system(self, vm_element_name: str) -> pywbem.CIMInstance:
        """``GetComputerSystem`` (On Error Resume Next): log Err and quit 1 when not found."""
        try:
            return self.item_index0(
                f"select * from Msvm_ComputerSystem where ElementName = '{vm_element_name}'")
        except VbsError as err:
            self.write_log(f"Err.Number: {err.number}")
            self.write_log(f"Err.Description:{err.description}")
            sys.exit(1)

    def wmi_job_completed(self, out: Mapping[str, Any]) -> bool:
        """``WMIJobCompleted``: poll the job each second, log why it failed."""
        job_path = out_param(out, "Job")
        job = self.conn.GetInstance(job_path)
        deadline = _deadline()
        while job["JobState"] in _UNDER_WAY:
            self.write_log(f"In progress... {job['PercentComplete']}% completed.")
            if time.monotonic() > deadline:
                raise VbsError(0x80041032, "Call cancelled: the job did not finish before "
                                           "$VSMS_SAMPLE_TIMEOUT")
            time.sleep(1.0)
            job = self.conn.GetInstance(job_path)
        if job["JobState"] != JobState.Completed:
            self.write_log(f"ErrorCode:{job['ErrorCode']}")
            self.write_log(f"ErrorDescription:{job['ErrorDescription'] or ''}")
            return False
        return True


def run_vbscript(script: str, main: Callable[[], None]) -> NoReturn:
    """Run a VBScript sample's Main: it quits with its own status (``WScript.Quit``); a
    run-time error it did not handle stops it with the error on stderr and status 1."""
    try:
        main()
    except VbsError as err:
        print(f"{script} Microsoft VBScript runtime error: {err.description} "
              f"(Err.Number {err.number})", file=sys.stderr)
        sys.exit(1)
    except (pywbem.Error, OSError, TypeError, KeyError) as err:
        print(f"{script} Microsoft VBScript runtime error: {err}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)
