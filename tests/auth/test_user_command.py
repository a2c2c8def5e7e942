"""``vsms user add|list|passwd|role|remove`` on a real users file (also as a subprocess)."""

from __future__ import annotations

import argparse
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from vsms.auth.policy import Role
from vsms.auth.users import UsersFile
from vsms.cli import user
from vsms.errors import InvalidParameter, NotFound

RUNNER = ("import argparse, sys\n"
          "from vsms.cli import user\n"
          "p = argparse.ArgumentParser(prog='vsms')\n"
          "p.add_argument('--output', default='text')\n"
          "user.add_parser(p.add_subparsers(dest='command', required=True))\n"
          "a = p.parse_args(sys.argv[1:])\n"
          "sys.exit(a.run(a))\n")


def vsms_user(state: Path, *args: str, stdin: str = "", output: str = "text",
              monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="vsms")
    parser.add_argument("--output", default="text")
    user.add_parser(parser.add_subparsers(dest="command", required=True))
    ns = parser.parse_args(["--output", output, "user", *args, "--state-dir", str(state)])
    out, err = io.StringIO(), io.StringIO()
    assert monkeypatch is not None
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    status = ns.run(ns)
    return status, out.getvalue(), err.getvalue()


def test_add_list_passwd_role_remove(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"

    def run(*args: str, stdin: str = "", output: str = "text") -> tuple[int, str, str]:
        return vsms_user(state, *args, stdin=stdin, output=output, monkeypatch=monkeypatch)

    assert run("add", "alice", "--role", "administrator", "--password-stdin",
               stdin="correct horse\n")[0] == 0
    assert run("add", "bob", "--role", "reader", "--password-stdin", stdin="battery staple\n",
               )[0] == 0
    path = state / "users.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "correct horse" not in text and "battery staple" not in text
    data = json.loads(text)
    hashes = {u["name"]: u["hash"] for u in data["users"]}
    assert all(h.startswith("$argon2id$") for h in hashes.values())
    assert PasswordHasher().verify(hashes["alice"], "correct horse")

    status, out, _ = run("list")
    lines = out.splitlines()
    assert status == 0 and lines[0].split() == ["NAME", "ROLE", "CHANGED"]
    assert lines[1].split()[:2] == ["alice", "administrator"]
    assert lines[2].split()[:2] == ["bob", "reader"]
    status, out, _ = run("list", output="json")
    assert [(u["name"], u["role"]) for u in json.loads(out)] == [
        ("alice", "administrator"), ("bob", "reader")]
    assert "hash" not in out

    assert run("passwd", "bob", "--password-stdin", stdin="new secret!\n")[0] == 0
    bob = UsersFile(path).get("bob")
    assert bob is not None and bob.hash != hashes["bob"]
    assert PasswordHasher().verify(bob.hash, "new secret!")
    assert run("role", "bob", "--role", "operator")[0] == 0
    assert UsersFile(path).get("bob").role == Role.OPERATOR  # type: ignore[union-attr]

    assert run("remove", "alice")[0] == 0
    assert [u.name for u in UsersFile(path).list()] == ["bob"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p for p in state.iterdir() if p.name.endswith(".tmp")]


def test_refusals_are_clear_and_change_nothing(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"

    def run(*args: str, stdin: str = "") -> tuple[int, str, str]:
        return vsms_user(state, *args, stdin=stdin, monkeypatch=monkeypatch)

    assert run("add", "carol", "--role", "operator", "--password-stdin",
               stdin="long enough\n")[0] == 0
    before = (state / "users.json").read_bytes()
    status, _, err = run("add", "carol", "--role", "reader", "--password-stdin",
                         stdin="long enough\n")
    assert status == 1 and "user carol already exists" in err
    status, _, err = run("add", "dave", "--role", "reader", "--password-stdin", stdin="short\n")
    assert status == 1 and "too short" in err
    status, _, err = run("add", "da:ve", "--role", "reader", "--password-stdin",
                         stdin="long enough\n")
    assert status == 1 and "not allowed" in err
    status, _, err = run("passwd", "nobody", "--password-stdin", stdin="long enough\n")
    assert status == 1 and "there is no user nobody" in err
    status, _, err = run("remove", "nobody")
    assert status == 1 and "there is no user nobody" in err
    status, _, err = run("add", "erin", "--role", "reader")  # stdin is no terminal
    assert status == 1 and "--password-stdin" in err
    assert (state / "users.json").read_bytes() == before


def test_a_too_open_or_damaged_file_is_refused(tmp_path: Path) -> None:
    users = UsersFile(tmp_path / "users.json")
    users.add("frank", Role.READER, "long enough")
    os.chmod(users.path, 0o644)
    with pytest.raises(InvalidParameter, match=r"mode 0644\): run chmod 600"):
        users.load()
    os.chmod(users.path, 0o600)
    users.path.write_text('{"format": "vsms-users", "version": 1, "users": [{"name": "x"}]}')
    with pytest.raises(InvalidParameter, match="damaged: entry 0 lacks"):
        users.list()
    with pytest.raises(NotFound):
        UsersFile(tmp_path / "none.json").remove("x")


def test_as_a_subprocess_with_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "vsms.toml"
    config.write_text(f'state_dir = "{tmp_path / "st"}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("VSMS_")}

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", RUNNER, *args], input=stdin, env=env,
                              capture_output=True, text=True, timeout=60, check=False)

    res = run("user", "add", "gina", "--role", "operator", "--password-stdin", "--config",
              str(config), stdin="from a pipe\n")
    assert res.returncode == 0, res.stderr
    assert "added user gina (operator)" in res.stdout
    res = run("--output", "json", "user", "list", "--config", str(config))
    assert json.loads(res.stdout)[0]["name"] == "gina"
    res = run("user", "add", "hank", "--role", "boss", "--config", str(config))
    assert res.returncode == 2 and "invalid choice" in res.stderr


def test_scoped_roles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"

    def run(*args: str, stdin: str = "", output: str = "text") -> tuple[int, str, str]:
        return vsms_user(state, *args, stdin=stdin, output=output, monkeypatch=monkeypatch)

    assert run("add", "carol", "--role", "operator", "--scope", "tenant one",
               "--password-stdin", stdin="carol's secret\n")[0] == 0
    users = UsersFile(state / "users.json")
    carol = users.get("carol")
    assert carol is not None and carol.role is None
    assert carol.scopes == (("tenant one", Role.OPERATOR),)
    assert carol.top_role == Role.OPERATOR and carol.grants() == (("tenant one", Role.OPERATOR),)
    # a second scope and a global reader role; the list shows all of them
    assert run("role", "carol", "--role", "administrator", "--scope", "t2")[0] == 0
    assert run("role", "carol", "--role", "reader")[0] == 0
    carol = users.get("carol")
    assert carol is not None and carol.grants() == (
        ("", Role.READER), ("t2", Role.ADMINISTRATOR), ("tenant one", Role.OPERATOR))
    status, out, _ = run("list")
    assert "reader everywhere, administrator in scope t2, operator in scope tenant one" in out
    status, out, _ = run("list", output="json")
    assert json.loads(out)[0]["scopes"] == {"t2": "administrator", "tenant one": "operator"}
    # roles are taken away one by one; the last one cannot be
    assert run("role", "carol", "--role", "none", "--scope", "t2")[0] == 0
    assert run("role", "carol", "--role", "none")[0] == 0
    status, _, err = run("role", "carol", "--role", "none", "--scope", "tenant one")
    assert status == 1 and "no role left" in err
    assert users.get("carol").grants() == (  # type: ignore[union-attr]
        ("tenant one", Role.OPERATOR),)
    # a bad scope name is refused and changes nothing
    status, _, err = run("role", "carol", "--role", "reader", "--scope", " padded")
    assert status == 1 and "scope name" in err
    # an unscoped user has no grants: its role applies to every VM
    assert run("add", "dave", "--role", "reader", "--password-stdin", stdin="dave secret\n"
               )[0] == 0
    assert users.get("dave").grants() == ()  # type: ignore[union-attr]
