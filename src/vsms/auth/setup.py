"""Security objects from Settings, and the check of where the listeners may bind.

- :func:`authenticator_from_settings`: the HTTP Basic authenticator (users file + optional PAM
  + per-source back-off), or None when ``auth = false``;
- :func:`audit_from_settings`: the audit log in the state directory;
- :func:`check_listeners`: plain HTTP only on loopback addresses unless ``allow_remote_http``,
  and no listener off loopback at all while authentication is off.
"""

from __future__ import annotations

import ipaddress
import logging
import socket

from vsms.auth.audit import AuditLog
from vsms.auth.basic import Authenticator
from vsms.auth.limiter import FailureLimiter
from vsms.auth.pam import PamAuthenticator
from vsms.auth.policy import Role
from vsms.auth.users import UsersFile
from vsms.errors import InvalidParameter
from vsms.settings import Settings

log = logging.getLogger("vsms.auth")


def is_loopback(address: str) -> bool:
    """Does ``address`` (an IP address or a host name) only reach this machine?"""
    if not address.strip():
        return False  # "" binds every interface
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(address, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    addrs = {str(info[4][0]).split("%")[0] for info in infos}
    return bool(addrs) and all(ipaddress.ip_address(a).is_loopback for a in addrs)


def check_listeners(*, https_listen: str | None, http_listen: str | None,
                    authenticated: bool, allow_remote_http: bool) -> None:
    """Refuse (InvalidParameter naming the fix) a listener that would expose credentials or an
    unauthenticated service beyond this machine. None = that listener is not used."""
    if not authenticated:
        for address in (http_listen, https_listen):
            if address is not None and not is_loopback(address):
                raise InvalidParameter(
                    f"authentication is off (auth = false / --no-auth), which is for local "
                    f"development only, so vsms listens on loopback only, not on "
                    f"{address or 'every interface'}: listen on 127.0.0.1 or ::1, or turn "
                    f"authentication on")
    if http_listen is not None and not allow_remote_http and not is_loopback(http_listen):
        raise InvalidParameter(
            f"refusing plain HTTP on {http_listen or 'every interface'}: HTTP Basic sends user "
            f"names and passwords in clear text, so the HTTP listener binds to a loopback "
            f"address only; use HTTPS from other machines and set http_listen = \"127.0.0.1\" "
            f"(VSMS_HTTP_LISTEN), or, on a trusted network only, allow_remote_http = true")


def authenticator_from_settings(settings: Settings) -> Authenticator | None:
    """The authenticator ``settings`` ask for; InvalidParameter for a bad users file or PAM
    setting. Warns when nobody could log in."""
    if not settings.auth:
        log.warning("authentication is OFF: every client is an administrator (local "
                    "development only; listeners are limited to loopback)")
        return None
    pam = None
    if settings.auth_pam:
        default = settings.pam_default_role.strip().lower()
        try:
            role = None if default == "none" else Role.parse(default)
        except ValueError as exc:
            raise InvalidParameter(f"setting pam_default_role: {exc} (or none)") from None
        pam = PamAuthenticator(settings.pam_service,
                               administrator_group=settings.pam_administrator_group,
                               operator_group=settings.pam_operator_group, default_role=role)
    try:
        limiter = FailureLimiter(free=settings.auth_max_failures,
                                 base=settings.auth_backoff_seconds,
                                 ceiling=settings.auth_backoff_max_seconds)
    except ValueError as exc:
        raise InvalidParameter(f"settings auth_max_failures / auth_backoff_seconds / "
                               f"auth_backoff_max_seconds: {exc}") from None
    users = UsersFile(settings.users_file)
    auth = Authenticator(users, pam=pam, limiter=limiter)
    if pam is None and not users.load():
        log.warning("authentication is on but %s holds no user, so nobody can log in: add one "
                    "with `vsms user add NAME --role administrator`", settings.users_file)
    return auth


def audit_from_settings(settings: Settings) -> AuditLog:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return AuditLog(settings.audit_file, max_bytes=settings.audit_max_bytes,
                    backups=settings.audit_backups)
