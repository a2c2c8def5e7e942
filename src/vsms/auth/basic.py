"""HTTP Basic authentication against the users file and, optionally, PAM.

:meth:`Authenticator.authenticate` takes the ``Authorization`` header and the client's address
and returns a :class:`Principal` (who, with which role) or a :class:`Refusal` (the HTTP status
and headers to answer with):

- a source in back-off -> 429 with Retry-After, before any password is looked at;
- no credentials, or another scheme than Basic -> 401 with ``WWW-Authenticate: Basic
  realm="vsms"`` (not counted as a failed login: it is how every client starts);
- wrong credentials -> 401 (counted; the source's back-off starts after a few).

A name found in the users file is checked there only (its argon2 hash); other names go to PAM
when it is enabled; when it is not, unknown names cost one argon2 verification too, so the
answer time does not tell which names exist. A successful check is remembered for
``cache_seconds`` under a keyed hash of name and password (never the password itself), so a
client that sends its credentials with every request pays argon2 once, not per request; the
memory is dropped when the users file changes. At most ``concurrency`` argon2 verifications
run at once (each takes 19 MiB).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from vsms.auth.limiter import FailureLimiter, retry_after_header
from vsms.auth.pam import PamAuthenticator
from vsms.auth.policy import Role
from vsms.auth.users import User, UsersFile, password_hasher, verify
from vsms.errors import VsmsError

log = logging.getLogger("vsms.auth")

REALM = "vsms"


@dataclass(frozen=True)
class Principal:
    """An authenticated user: ``via`` is "users-file", "pam" or "none" (authentication off)."""

    user: str
    role: Role  # the highest role the user has (on every VM when ``grants`` is empty)
    via: str
    source: str = ""
    grants: tuple[tuple[str, Role], ...] = ()  # per-scope roles (vsms.auth.scopes); () = all


@dataclass(frozen=True)
class Refusal:
    status: int  # 401 or 429
    message: str
    headers: list[tuple[str, str]] = field(default_factory=list)


class Authenticator:
    def __init__(self, users: UsersFile, *, pam: PamAuthenticator | None = None,
                 limiter: FailureLimiter | None = None, cache_seconds: float = 60.0,
                 concurrency: int = 2, clock: Callable[[], float] = time.monotonic) -> None:
        self.users = users
        self.pam = pam
        self.limiter = limiter or FailureLimiter()
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._slots = threading.BoundedSemaphore(concurrency)
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._cache: dict[bytes, tuple[float, Principal]] = {}
        self._loaded: tuple[object, dict[str, User]] | None = None
        self._dummy = password_hasher().hash(secrets.token_hex(16))
        users.load()  # a damaged or too open users file stops the start with a clear error

    def authenticate(self, header: str | None, source: str) -> Principal | Refusal:
        wait = self.limiter.retry_after(source)
        if wait > 0:
            return Refusal(429, f"too many failed logins from {source}: retry in "
                                f"{retry_after_header(wait)} s",
                           [("Retry-After", retry_after_header(wait))])
        creds = _basic_credentials(header)
        if creds is None:
            return self._challenge("authentication required: send HTTP Basic credentials "
                                   "(user name and password)")
        if isinstance(creds, str):
            return self._failed(source, "?", creds)
        user, password = creds
        key = hmac.new(self._key, f"{user}\x00{password}".encode(), hashlib.sha256).digest()
        users = self._users()
        cached = self._cached(key)
        if cached is not None:
            self.limiter.success(source)
            return replace(cached, source=source)
        principal = self._check(user, password, users, source)
        if principal is None:
            return self._failed(source, user, "wrong user name or password")
        self.limiter.success(source)
        with self._lock:
            if len(self._cache) >= 1024:
                self._cache.clear()
            self._cache[key] = (self._clock() + self.cache_seconds, principal)
        return principal

    # ------------------------------------------------------------------ internals
    def _users(self) -> dict[str, User]:
        """The users file's current content (re-read when it changed; {} while damaged)."""
        sig: object
        try:
            sig = self.users.signature()
        except VsmsError as err:
            log.error("%s", err)
            sig = ("unreadable", time.time())
        with self._lock:
            if self._loaded is not None and self._loaded[0] == sig:
                return self._loaded[1]
        try:
            users = self.users.load()
        except VsmsError as err:
            log.error("no login through the users file until it is fixed: %s", err)
            users = {}
        with self._lock:
            self._loaded = (sig, users)
            self._cache.clear()
        return users

    def _cached(self, key: bytes) -> Principal | None:
        with self._lock:
            hit = self._cache.get(key)
            if hit is None:
                return None
            if hit[0] < self._clock():
                del self._cache[key]
                return None
            return hit[1]

    def _check(self, user: str, password: str, users: dict[str, User],
               source: str) -> Principal | None:
        entry = users.get(user)
        if entry is not None or self.pam is None:
            target = entry or User(user, Role.READER, self._dummy, "")
            with self._slots:
                ok = verify(target, password, self.users.hasher)
            return Principal(user, entry.top_role, "users-file", source,
                             entry.grants()) if ok and entry else None
        if not self.pam.check(user, password, source):
            return None
        role = self.pam.role(user)
        if role is None:
            log.warning("PAM user %s from %s has the right password but no vsms role "
                        "(pam_default_role = none and in no vsms group)", user, source)
            return None
        return Principal(user, role, "pam", source)

    @staticmethod
    def _challenge(message: str) -> Refusal:
        return Refusal(401, message, [("WWW-Authenticate", f'Basic realm="{REALM}"')])

    def _failed(self, source: str, user: str, message: str) -> Refusal:
        blocked = self.limiter.failure(source)
        log.warning("failed login for %r from %s%s", user, source,
                    f"; further attempts refused for {blocked:g} s" if blocked else "")
        refusal = self._challenge(message)
        if blocked:
            refusal.headers.append(("Retry-After", retry_after_header(blocked)))
        return refusal


def _basic_credentials(header: str | None) -> tuple[str, str] | str | None:
    """(user, password); a str says why the Basic credentials are malformed; None: none sent
    (no header, or another scheme)."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        raw = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return "malformed Basic credentials (not base64)"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    user, sep, password = text.partition(":")
    if not sep or not user:
        return "malformed Basic credentials (expected user:password)"
    return user, password
