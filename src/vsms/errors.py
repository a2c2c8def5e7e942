"""One exception hierarchy. Each class says which ReturnValue it becomes on the wire.

``expected`` errors are the caller's fault (bad input, wrong state); they are reported to the
client and logged at INFO, never as a server fault.
"""

from __future__ import annotations

from vsms.cim.enums import ReturnCode


class VsmsError(Exception):
    """Base error: ``code`` is the ReturnValue (and the failed job's ErrorCode)."""

    code: ReturnCode = ReturnCode.FAILED
    expected: bool = False

    def __init__(self, message: str, *, code: ReturnCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class InvalidParameter(VsmsError):
    code = ReturnCode.INVALID_PARAMETER
    expected = True


class InvalidState(VsmsError):
    code = ReturnCode.INVALID_STATE
    expected = True


class NotSupported(VsmsError):
    code = ReturnCode.NOT_SUPPORTED
    expected = True


class AccessDenied(VsmsError):
    code = ReturnCode.ACCESS_DENIED
    expected = True


class InUse(VsmsError):
    code = ReturnCode.SYSTEM_IN_USE
    expected = True


class NotFound(VsmsError):
    """A referenced object (VM, setting data, job) does not exist: Invalid parameter on the wire."""

    code = ReturnCode.INVALID_PARAMETER
    expected = True


class FileNotFound(VsmsError):
    code = ReturnCode.FILE_NOT_FOUND
    expected = True


class IncorrectDataType(VsmsError):
    code = ReturnCode.INCORRECT_DATA_TYPE
    expected = True


class SystemNotAvailable(VsmsError):
    """A backend (libvirt, qemu-img, the disk) failed or is unreachable."""

    code = ReturnCode.SYSTEM_NOT_AVAILABLE


class OperationFailed(VsmsError):
    code = ReturnCode.FAILED


class JobCancelled(VsmsError):
    """Raised inside a job when a client asked to terminate it; the job ends Terminated."""

    code = ReturnCode.FAILED
    expected = True


class ValidationFailed(VsmsError):
    """Several problems found at once (the import compatibility report)."""

    expected = True

    def __init__(self, problems: list[str], *, code: ReturnCode = ReturnCode.INVALID_PARAMETER,
                 summary: str = "The export directory failed validation") -> None:
        self.problems = list(problems)
        lines = "; ".join(f"({i}) {p}" for i, p in enumerate(self.problems, 1))
        super().__init__(f"{summary}: {len(self.problems)} problem(s): {lines}", code=code)
