"""``vsms user add|remove|list|passwd|role``: the users file of HTTP Basic authentication.

A role is global (every VM) or, with ``--scope NAME``, granted on the VMs of that scope only
(their ScopeOfResidence; ``vsms.auth.scopes``); a user may hold a global role and roles in
several scopes.

Works directly on ``users.json`` in the state directory (found like ``vsms serve`` finds it:
``--state-dir``, else ``--config`` TOML / ``VSMS_STATE_DIR``, else the default), never over the
network, so it needs the rights of the service's account (root). A running service picks up
every change at its next request. Passwords are asked twice on the terminal, or read as one
line from standard input with ``--password-stdin``; they are never accepted on the command line
(other users could read them in the process list) and only their argon2id hash is stored.
Exit status: 0 done, 1 failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from vsms.auth.policy import Role
from vsms.auth.users import User, UsersFile, check_password
from vsms.cli.output import Output
from vsms.errors import NotFound, VsmsError
from vsms.settings import load_settings

_ROLES = [r.label for r in reversed(Role)]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    where = argparse.ArgumentParser(add_help=False)
    g = where.add_argument_group("where the users file is")
    g.add_argument("--config", type=Path, metavar="FILE", help="TOML settings file of the service")
    g.add_argument("--state-dir", type=Path, metavar="DIR",
                   help="the service's state directory (default /var/lib/vsms/state)")
    p = sub.add_parser(
        "user", help="manage the users who may log in (local: edits the users file)",
        description="Manage the users of HTTP Basic authentication: their roles "
                    f"({', '.join(_ROLES)}) and argon2id password hashes in users.json in the "
                    "state directory. Run it on the service's host as root.")
    actions = p.add_subparsers(dest="user_action", metavar="ACTION", required=True)
    a = actions.add_parser("add", parents=[where], help="add a user")
    a.add_argument("name")
    a.add_argument("--role", required=True, choices=_ROLES)
    a.add_argument("--scope", metavar="NAME",
                   help="grant the role only on the VMs of this scope (their ScopeOfResidence); "
                        "without it the role applies to every VM")
    a.add_argument("--password-stdin", action="store_true",
                   help="read the password as one line from standard input")
    a.set_defaults(run=run, do=_add)
    r = actions.add_parser("remove", parents=[where], help="remove a user")
    r.add_argument("name")
    r.set_defaults(run=run, do=_remove)
    w = actions.add_parser("passwd", parents=[where], help="set a user's password")
    w.add_argument("name")
    w.add_argument("--password-stdin", action="store_true",
                   help="read the password as one line from standard input")
    w.set_defaults(run=run, do=_passwd)
    o = actions.add_parser("role", parents=[where],
                           help="change a user's role (global, or in one scope)")
    o.add_argument("name")
    o.add_argument("--role", required=True, choices=[*_ROLES, "none"],
                   help="the new role; none takes the role (global or in --scope) away")
    o.add_argument("--scope", metavar="NAME",
                   help="change the role in this scope only (see `vsms user add --scope`)")
    o.set_defaults(run=run, do=_role)
    lst = actions.add_parser("list", parents=[where], help="list the users and their roles")
    lst.set_defaults(run=run, do=_list)


def run(args: argparse.Namespace) -> int:
    """Run the chosen action; 0 on success, 1 on failure (message on stderr)."""
    out = Output(getattr(args, "output", "text") or "text")
    try:
        settings = load_settings(args.config, os.environ, state_dir=args.state_dir)
        status: int = args.do(args, UsersFile(settings.users_file), out)
        return status
    except VsmsError as err:
        out.error(str(err))
    except PermissionError as err:
        out.error(f"{err.filename}: permission denied: the users file belongs to the service; "
                  f"run this as root (or as the service's user)")
    except OSError as err:
        out.error(f"{err.filename or 'the users file'}: {err.strerror or err}")
    except (EOFError, KeyboardInterrupt):
        out.error("no password given: nothing changed")
    return 1


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise VsmsError("--password-stdin: standard input is empty: write the password "
                            "on it as one line")
        return check_password(line.rstrip("\r\n"))
    if not sys.stdin.isatty():
        raise VsmsError("no terminal to ask the password on: pass --password-stdin and write "
                        "the password on standard input")
    first = check_password(getpass.getpass(f"New password for {args.name}: "))
    if getpass.getpass("Repeat it: ") != first:
        raise VsmsError("the two passwords differ: nothing changed")
    return first


def _roles_text(user: User) -> str:
    """``administrator`` / ``operator in scope t1, reader`` as the list shows them."""
    parts = [f"{role.label} in scope {scope}" for scope, role in user.scopes]
    if user.role is not None:
        parts.insert(0, user.role.label if not parts else f"{user.role.label} everywhere")
    return ", ".join(parts)


def _roles_data(user: User) -> dict[str, object]:
    return {"role": user.role.label if user.role is not None else None,
            "scopes": {scope: role.label for scope, role in user.scopes}}


def _add(args: argparse.Namespace, users: UsersFile, out: Output) -> int:
    user = users.add(args.name, Role.parse(args.role), _password(args), scope=args.scope)
    out.result(f"added user {user.name} ({_roles_text(user)}) to {users.path}",
               {"ok": True, "name": user.name, **_roles_data(user)})
    return 0


def _remove(args: argparse.Namespace, users: UsersFile, out: Output) -> int:
    users.remove(args.name)
    out.result(f"removed user {args.name} from {users.path}", {"ok": True, "name": args.name})
    return 0


def _passwd(args: argparse.Namespace, users: UsersFile, out: Output) -> int:
    if users.get(args.name) is None:  # before asking for a password in vain
        raise NotFound(f"there is no user {args.name} in {users.path}: add it with "
                       f"`vsms user add {args.name} --role ROLE`")
    users.set_password(args.name, _password(args))
    out.result(f"changed the password of {args.name}", {"ok": True, "name": args.name})
    return 0


def _role(args: argparse.Namespace, users: UsersFile, out: Output) -> int:
    role = None if args.role == "none" else Role.parse(args.role)
    users.set_role(args.name, role, scope=args.scope)
    user = users.get(args.name)
    assert user is not None
    out.result(f"{args.name} is now {_roles_text(user)}",
               {"ok": True, "name": args.name, **_roles_data(user)})
    return 0


def _list(args: argparse.Namespace, users: UsersFile, out: Output) -> int:
    rows = users.list()
    data = [{"name": u.name, **_roles_data(u), "changed": u.changed} for u in rows]
    if not rows:
        out.result(f"no users in {users.path} (add one with `vsms user add NAME --role ROLE`)",
                   data)
        return 0
    out.result(out.table([[u.name, _roles_text(u), u.changed] for u in rows],
                         ["NAME", "ROLE", "CHANGED"]), data)
    return 0
