"""The users file: user names, roles and argon2id password hashes, in the state directory.

JSON, never plaintext passwords: ``{"format": "vsms-users", "version": 1, "users": [{"name",
"role", "hash", "changed"}]}``. Writes take an exclusive lock (``users.json.lock``), go to a
temporary file of mode 0600 that is fsynced and renamed over the old one, so a reader (the
running service) sees the old file or the new one, never half of one. A file that other users
may read or write is refused, as is one that does not parse: the service then accepts no
file-based login until it is fixed (fail closed).

Hashes use argon2id with the OWASP minimum parameters (m=19 MiB, t=2, p=1, ~30 ms); a hash
records its own parameters, so stronger ones can be adopted later without breaking old hashes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from vsms.auth.policy import Role
from vsms.errors import InvalidParameter, NotFound, SystemNotAvailable

FORMAT = "vsms-users"
VERSION = 1
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$")
SCOPE_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,128}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
LOCK_TIMEOUT = 10.0


def password_hasher() -> PasswordHasher:
    """argon2id, OWASP minimum: 19 MiB, 2 passes, 1 lane."""
    return PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


@dataclass(frozen=True)
class User:
    name: str
    role: Role | None  # the global role (every VM); None: only the roles of ``scopes``
    hash: str  # argon2id encoded hash ($argon2id$v=19$m=...,t=...,p=...$salt$digest)
    changed: str  # ISO 8601 UTC time of the last change of password or role
    scopes: tuple[tuple[str, Role], ...] = ()  # (scope name, role there), sorted by name

    @property
    def top_role(self) -> Role:
        """The highest role the user has anywhere (what the role table checks first)."""
        return max([r for r in (self.role, *(r for _, r in self.scopes)) if r is not None])

    def grants(self) -> tuple[tuple[str, Role], ...]:
        """What ``vsms.auth.scopes`` filters by: () for a user without scopes (its role
        applies everywhere), else the scope roles plus the global one under the scope ""."""
        if not self.scopes:
            return ()
        return ((("", self.role),) if self.role is not None else ()) + self.scopes

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name,
                               "role": self.role.label if self.role is not None else None,
                               "hash": self.hash, "changed": self.changed}
        if self.scopes:
            out["scopes"] = {scope: role.label for scope, role in self.scopes}
        return out


def _with(user: User, scope: str | None, role: Role | None) -> User:
    """``user`` with its global role (scope None) or its role in ``scope`` set; role None
    takes it away. InvalidParameter when the user would be left with no role at all."""
    if scope is None:
        new = User(user.name, role, user.hash, _now(), user.scopes)
    else:
        scopes = dict(user.scopes)
        if role is None:
            scopes.pop(scope, None)
        else:
            scopes[scope] = role
        new = User(user.name, user.role, user.hash, _now(), tuple(sorted(scopes.items())))
    if new.role is None and not new.scopes:
        raise InvalidParameter(f"user {user.name} would have no role left: remove the user "
                               f"with `vsms user remove {user.name}` instead")
    return new


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise InvalidParameter(
            f"user name {name!r} is not allowed: use 1 to 64 letters, digits, '_', '.', '@' or "
            f"'-', starting with a letter, digit or '_' (no ':' - HTTP Basic splits on it)")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidParameter(f"the password is too short: use at least {MIN_PASSWORD} "
                               f"characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidParameter(f"the password is too long: use at most {MAX_PASSWORD} characters")
    if "\n" in password or "\r" in password or "\x00" in password:
        raise InvalidParameter("the password may not contain a line break or a NUL character")
    return password


def _scope(name: str) -> str:
    """A scope name (a VM's ScopeOfResidence): 1 to 128 printable characters."""
    if not SCOPE_RE.match(name) or name != name.strip():
        raise InvalidParameter(f"scope name {name!r} is not allowed: use 1 to 128 printable "
                               "characters without leading or trailing spaces")
    return name


def _parse_scopes(raw: Any) -> tuple[tuple[str, Role], ...]:
    if not isinstance(raw, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise ValueError("'scopes' is not a map of scope names to roles")
    try:
        return tuple(sorted((_scope(k), Role.parse(v)) for k, v in raw.items()))
    except InvalidParameter as exc:
        raise ValueError(str(exc)) from None


def verify(user: User, password: str, hasher: PasswordHasher) -> bool:
    """Does ``password`` match the user's hash? (False for a damaged hash, never raises.)"""
    try:
        return bool(hasher.verify(user.hash, password))
    except (VerificationError, InvalidHashError):
        return False


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class UsersFile:
    """One users file; every method re-reads it, so it always sees the latest version."""

    def __init__(self, path: Path, hasher: PasswordHasher | None = None) -> None:
        self.path = path
        self.hasher = hasher or password_hasher()

    # ------------------------------------------------------------------ reading
    def signature(self) -> tuple[int, int, int, int] | None:
        """Changes whenever the file is replaced or modified; None when it does not exist."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SystemNotAvailable(f"cannot read the users file {self.path}: "
                                     f"{exc.strerror or exc}") from exc
        return (st.st_ino, st.st_mtime_ns, st.st_size, st.st_mode)

    def load(self) -> dict[str, User]:
        """Users by name; {} when the file does not exist. InvalidParameter names what is wrong
        with a damaged or too open file and how to fix it."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise InvalidParameter(f"cannot open the users file {self.path}: "
                                   f"{exc.strerror or exc}; it must be a regular file "
                                   f"(not a symlink)") from exc
        with os.fdopen(fd, "rb") as fh:
            mode = os.fstat(fh.fileno()).st_mode & 0o777
            if mode & 0o077:
                raise InvalidParameter(
                    f"the users file {self.path} is open to other users (mode {mode:04o}): "
                    f"run chmod 600 {self.path}")
            raw = fh.read(16 * 1024 * 1024)
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidParameter(f"the users file {self.path} is not valid JSON ({exc}); "
                                   f"restore it from a backup or remove it and add the users "
                                   f"again with `vsms user add`") from exc
        return self._parse(data)

    def _parse(self, data: Any) -> dict[str, User]:
        def bad(why: str) -> InvalidParameter:
            return InvalidParameter(f"the users file {self.path} is damaged: {why}; fix it or "
                                    f"recreate it with `vsms user add`")

        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise bad(f"it is not a {FORMAT} file")
        if data.get("version") != VERSION:
            raise bad(f"version {data.get('version')!r} is not supported (expected {VERSION})")
        entries = data.get("users")
        if not isinstance(entries, list):
            raise bad("'users' is not a list")
        out: dict[str, User] = {}
        for i, e in enumerate(entries):
            if not isinstance(e, dict) or not all(
                    isinstance(e.get(k), str) for k in ("name", "hash")) or not (
                    isinstance(e.get("role"), str) or e.get("role") is None):
                raise bad(f"entry {i} lacks a name, role or hash")
            name = e["name"]
            if not NAME_RE.match(name) or name in out:
                raise bad(f"entry {i} has a bad or repeated user name {name!r}")
            try:
                role = Role.parse(e["role"]) if e["role"] is not None else None
                scopes = _parse_scopes(e.get("scopes", {}))
            except ValueError as exc:
                raise bad(f"user {name}: {exc}") from None
            if role is None and not scopes:
                raise bad(f"user {name} has neither a role nor a scope")
            if not e["hash"].startswith("$argon2"):
                raise bad(f"user {name} has no argon2 hash")
            out[name] = User(name, role, e["hash"], str(e.get("changed", "")), scopes)
        return out

    def list(self) -> list[User]:
        return sorted(self.load().values(), key=lambda u: u.name)

    def get(self, name: str) -> User | None:
        return self.load().get(name)

    # ------------------------------------------------------------------ changing
    def add(self, name: str, role: Role, password: str, scope: str | None = None) -> User:
        """Add a user with a global role, or (``scope``) a role in that scope only."""
        check_name(name)
        check_password(password)
        scopes = ((_scope(scope), role),) if scope is not None else ()
        user = User(name, role if scope is None else None, self.hasher.hash(password), _now(),
                    scopes)
        with self._locked():
            users = self.load()
            if name in users:
                raise InvalidParameter(f"user {name} already exists: change the password with "
                                       f"`vsms user passwd {name}` or the role with "
                                       f"`vsms user role {name} --role ROLE`")
            users[name] = user
            self._write(users)
        return user

    def remove(self, name: str) -> None:
        with self._locked():
            users = self.load()
            if users.pop(name, None) is None:
                raise NotFound(f"there is no user {name} in {self.path} (see `vsms user list`)")
            self._write(users)

    def set_password(self, name: str, password: str) -> None:
        check_password(password)
        new_hash = self.hasher.hash(password)
        self._change(name, lambda u: User(u.name, u.role, new_hash, _now(), u.scopes))

    def set_role(self, name: str, role: Role | None, scope: str | None = None) -> None:
        """Set (None: take away) the user's global role, or its role in ``scope``."""
        where = _scope(scope) if scope is not None else None
        self._change(name, lambda u: _with(u, where, role))

    def _change(self, name: str, how: Any) -> None:
        with self._locked():
            users = self.load()
            if name not in users:
                raise NotFound(f"there is no user {name} in {self.path}: add it with "
                               f"`vsms user add {name} --role ROLE`")
            users[name] = how(users[name])
            self._write(users)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + LOCK_TIMEOUT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() > deadline:
                        raise SystemNotAvailable(
                            f"the users file {self.path} is locked by another `vsms user` "
                            f"command for more than {LOCK_TIMEOUT:g} s; try again") from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)

    def _write(self, users: dict[str, User]) -> None:
        data = {"format": FORMAT, "version": VERSION,
                "users": [u.to_json() for u in sorted(users.values(), key=lambda u: u.name)]}
        text = json.dumps(data, indent=2) + "\n"
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                os.fchmod(fh.fileno(), 0o600)
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
