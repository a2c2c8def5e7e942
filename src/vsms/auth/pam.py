"""Local Linux accounts through PAM (libpam via ctypes, no extra package), and their role.

``PamAuthenticator.check(user, password, source)`` runs ``pam_authenticate`` then
``pam_acct_mgmt`` (expired or locked accounts are refused) for the configured PAM service
(``/etc/pam.d/<service>``; without that file PAM uses ``/etc/pam.d/other``). The remote address
goes to PAM as PAM_RHOST (pam_unix logs it). PAM's own delay after a failure is replaced by
a no-op delay function: vsms's per-source back-off (``limiter``) takes its place, so a failed
login does not hold a worker thread for seconds. At most two PAM conversations run at once.

The role of a PAM user comes from the groups it belongs to (primary and supplementary):
``administrator_group`` -> administrator, ``operator_group`` -> operator, otherwise
``default_role`` (None: refused even with the right password).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import grp
import logging
import os
import pwd
import threading
from typing import Any

from vsms.auth.policy import Role
from vsms.errors import SystemNotAvailable

log = logging.getLogger(__name__)

PAM_SUCCESS = 0
PAM_RHOST = 4
PAM_FAIL_DELAY = 10
PAM_DISALLOW_NULL_AUTHTOK = 0x1
PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON = 1, 2
PAM_CONV_ERR = 19
PAM_BUF_ERR = 5


class _Message(ctypes.Structure):
    _fields_ = [("msg_style", ctypes.c_int), ("msg", ctypes.c_char_p)]


class _Response(ctypes.Structure):
    # resp is malloc'ed by us and freed by PAM: keep it a raw pointer
    _fields_ = [("resp", ctypes.c_void_p), ("resp_retcode", ctypes.c_int)]


_CONV = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int,
                         ctypes.POINTER(ctypes.POINTER(_Message)),
                         ctypes.POINTER(ctypes.POINTER(_Response)), ctypes.c_void_p)
_DELAY = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p)


class _Conv(ctypes.Structure):
    _fields_ = [("conv", _CONV), ("appdata_ptr", ctypes.c_void_p)]


class _Lib:
    """libpam and libc with typed prototypes (loaded once per PamAuthenticator)."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("pam")
        if name is None:
            raise SystemNotAvailable("auth_pam is on but libpam is not installed: install it "
                                     "(apt-get install libpam0g) or set auth_pam = false")
        pam = ctypes.CDLL(name)
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        handle_p = ctypes.POINTER(ctypes.c_void_p)
        self.start = pam.pam_start
        self.start.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(_Conv), handle_p]
        self.start.restype = ctypes.c_int
        self.set_item = pam.pam_set_item
        self.set_item.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        self.set_item.restype = ctypes.c_int
        self.authenticate = pam.pam_authenticate
        self.acct_mgmt = pam.pam_acct_mgmt
        for fn in (self.authenticate, self.acct_mgmt):
            fn.argtypes = [ctypes.c_void_p, ctypes.c_int]
            fn.restype = ctypes.c_int
        self.end = pam.pam_end
        self.end.argtypes = [ctypes.c_void_p, ctypes.c_int]
        self.end.restype = ctypes.c_int
        self.strerror = pam.pam_strerror
        self.strerror.argtypes = [ctypes.c_void_p, ctypes.c_int]
        self.strerror.restype = ctypes.c_char_p
        self.calloc = libc.calloc
        self.calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
        self.calloc.restype = ctypes.c_void_p
        self.strdup = libc.strdup
        self.strdup.argtypes = [ctypes.c_char_p]
        self.strdup.restype = ctypes.c_void_p


class PamAuthenticator:
    def __init__(self, service: str = "vsms", *, administrator_group: str = "",
                 operator_group: str = "", default_role: Role | None = Role.READER,
                 concurrency: int = 2) -> None:
        self.service = service
        self.administrator_group = administrator_group
        self.operator_group = operator_group
        self.default_role = default_role
        self._lib = _Lib()
        self._slots = threading.BoundedSemaphore(concurrency)

    def check(self, user: str, password: str, source: str = "") -> bool:
        """True when PAM accepts ``user``/``password`` and the account is usable."""
        if not user or "\x00" in user or "\x00" in password:
            return False
        with self._slots:
            return self._converse(user.encode(), password.encode(), source.encode())

    def role(self, user: str) -> Role | None:
        """The role of a PAM-authenticated ``user`` from its groups (None: refused)."""
        try:
            pw = pwd.getpwnam(user)
            gids = set(os.getgrouplist(user, pw.pw_gid))
        except (KeyError, OSError):
            return None
        for group, role in ((self.administrator_group, Role.ADMINISTRATOR),
                            (self.operator_group, Role.OPERATOR)):
            if not group:
                continue
            try:
                if grp.getgrnam(group).gr_gid in gids:
                    return role
            except KeyError:
                continue
        return self.default_role

    def _converse(self, user: bytes, password: bytes, source: bytes) -> bool:
        lib = self._lib

        def conv(n: int, messages: Any, responses: Any, _data: Any) -> int:
            block = lib.calloc(max(n, 1), ctypes.sizeof(_Response))
            if not block:
                return PAM_BUF_ERR
            replies = ctypes.cast(block, ctypes.POINTER(_Response))
            for i in range(n):
                style = messages[i].contents.msg_style
                if style == PAM_PROMPT_ECHO_OFF:
                    replies[i].resp = lib.strdup(password)
                elif style == PAM_PROMPT_ECHO_ON:
                    replies[i].resp = lib.strdup(user)
            responses[0] = replies
            return PAM_SUCCESS

        def no_delay(_status: int, _usec: int, _data: Any) -> None:
            return None

        conv_cb, delay_cb = _CONV(conv), _DELAY(no_delay)  # kept alive until pam_end
        conv_struct = _Conv(conv_cb, None)
        handle = ctypes.c_void_p()
        rc = lib.start(self.service.encode(), user, ctypes.byref(conv_struct),
                       ctypes.byref(handle))
        if rc != PAM_SUCCESS:
            log.error("pam_start(%s) failed with PAM status %d", self.service, rc)
            return False
        try:
            lib.set_item(handle, PAM_FAIL_DELAY, ctypes.cast(delay_cb, ctypes.c_void_p))
            if source:
                lib.set_item(handle, PAM_RHOST, ctypes.cast(ctypes.c_char_p(source),
                                                            ctypes.c_void_p))
            rc = lib.authenticate(handle, PAM_DISALLOW_NULL_AUTHTOK)
            if rc == PAM_SUCCESS:
                rc = lib.acct_mgmt(handle, PAM_DISALLOW_NULL_AUTHTOK)
            if rc != PAM_SUCCESS:
                text = lib.strerror(handle, rc) or b"?"
                log.info("PAM (%s) refused %s: %s", self.service,
                         user.decode(errors="replace"), text.decode(errors="replace"))
            return bool(rc == PAM_SUCCESS)
        finally:
            lib.end(handle, rc)
