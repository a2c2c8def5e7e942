"""PAM with real local accounts made here (useradd/chpasswd as root, removed afterwards)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import pywbem

from tests.wbem.model import NS, ServiceProvider
from vsms.auth.basic import Authenticator
from vsms.auth.limiter import FailureLimiter
from vsms.auth.pam import PamAuthenticator
from vsms.auth.policy import Role
from vsms.auth.users import UsersFile
from vsms.providers.registry import Registry
from vsms.wbem.server import WbemServer

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("useradd", "chpasswd", "groupadd")),
    reason="needs root and useradd/chpasswd/groupadd to make a local account")


def sh(*cmd: str, stdin: str | None = None) -> None:
    subprocess.run(cmd, input=stdin, text=True, check=True, capture_output=True, timeout=60)


@dataclass
class Accounts:
    admin: str
    plain: str
    group: str
    password: str = "Pam-pass-1234"


@pytest.fixture
def accounts() -> Iterator[Accounts]:
    tag = uuid.uuid4().hex[:6]
    acc = Accounts(f"vsmsta{tag}", f"vsmstp{tag}", f"vsmstg{tag}")
    made: list[tuple[str, ...]] = []
    try:
        sh("groupadd", acc.group)
        made.append(("groupdel", acc.group))
        for name, groups in ((acc.admin, [acc.group]), (acc.plain, [])):
            sh("useradd", "-M", "-s", "/usr/sbin/nologin",
               *(("-G", ",".join(groups)) if groups else ()), name)
            made.insert(0, ("userdel", name))
            sh("chpasswd", stdin=f"{name}:{acc.password}\n")
        yield acc
    finally:
        for cmd in made:
            subprocess.run(cmd, capture_output=True, timeout=60, check=False)


def test_pam_checks_passwords_and_groups(accounts: Accounts) -> None:
    pam = PamAuthenticator(administrator_group=accounts.group, operator_group="")
    assert pam.check(accounts.admin, accounts.password, "127.0.0.1")
    assert not pam.check(accounts.admin, "wrong-password")
    assert not pam.check("vsms-no-such-user", accounts.password)
    assert pam.role(accounts.admin) == Role.ADMINISTRATOR
    assert pam.role(accounts.plain) == Role.READER
    assert PamAuthenticator(default_role=None).role(accounts.plain) is None


def test_pam_users_over_cim_xml(accounts: Accounts, model: tuple[Registry, ServiceProvider],
                                users: UsersFile) -> None:
    pam = PamAuthenticator(administrator_group=accounts.group)
    auth = Authenticator(users, pam=pam, limiter=FailureLimiter(free=10))
    srv = WbemServer(model[0], http_port=0, auth=auth, workers=2)
    srv.start()
    url = f"http://127.0.0.1:{srv.ports['http']}"
    svc = pywbem.CIMClassName("TST_Service", namespace=NS)
    try:
        admin = pywbem.WBEMConnection(url, (accounts.admin, accounts.password),
                                      default_namespace=NS, timeout=30)
        assert admin.InvokeMethod("Version", svc)[0] == 0
        plain = pywbem.WBEMConnection(url, (accounts.plain, accounts.password),
                                      default_namespace=NS, timeout=30)
        assert len(plain.EnumerateInstances("TST_VirtualSystem")) == 3
        assert plain.InvokeMethod("Version", svc)[0] == 32769  # a reader
        with pytest.raises(pywbem.AuthError):
            pywbem.WBEMConnection(url, (accounts.plain, "wrong-password"),
                                  default_namespace=NS, timeout=30).EnumerateClassNames()
        # a users-file name is checked against the file only, never PAM
        users.add(accounts.plain, Role.OPERATOR, "file-password")
        with pytest.raises(pywbem.AuthError):
            plain.EnumerateClassNames()
    finally:
        srv.stop()


def test_pam_off_means_local_accounts_are_refused(accounts: Accounts,
                                                  model: tuple[Registry, ServiceProvider],
                                                  users: UsersFile) -> None:
    srv = WbemServer(model[0], http_port=0, auth=Authenticator(users), workers=2)
    srv.start()
    try:
        conn = pywbem.WBEMConnection(f"http://127.0.0.1:{srv.ports['http']}",
                                     (accounts.admin, accounts.password), timeout=30)
        with pytest.raises(pywbem.AuthError):
            conn.EnumerateClassNames(namespace=NS)
    finally:
        srv.stop()
