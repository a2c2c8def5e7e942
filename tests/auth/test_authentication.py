"""HTTP Basic authentication on both listeners, with real pywbem and wbemcli clients."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import pywbem

from tests.auth.conftest import PASSWORDS, Secured, basic, raw_request
from tests.wbem.model import NS


def test_no_credentials_get_401_with_a_basic_challenge(secured: Secured) -> None:
    status, headers, body = raw_request(secured.server.ports["http"])
    assert status == 401
    assert headers["www-authenticate"] == 'Basic realm="vsms"'
    assert b"authentication required" in body
    assert "retry-after" not in headers  # asking is not failing
    with pytest.raises(pywbem.AuthError):
        secured.connect(None).EnumerateClassNames()


@pytest.mark.parametrize("user,password", [("admin", "wrong-password"), ("nobody", "whatever1")])
def test_wrong_credentials_get_401(secured: Secured, user: str, password: str) -> None:
    conn = secured.connect(user, password)
    with pytest.raises(pywbem.AuthError):
        conn.EnumerateInstances("TST_VirtualSystem")
    status, headers, _ = raw_request(secured.server.ports["http"], basic(user, password))
    assert status == 401 and headers["www-authenticate"] == 'Basic realm="vsms"'
    status, _, body = raw_request(secured.server.ports["http"], "Basic !!notbase64")
    assert status == 401 and b"malformed" in body


@pytest.mark.parametrize("https", [False, True])
def test_right_credentials_succeed_over_http_and_https(secured: Secured, https: bool) -> None:
    for user in PASSWORDS:
        conn = secured.connect(user, https=https)
        try:
            assert len(conn.EnumerateInstances("TST_VirtualSystem")) == 3
            assert "TST_Service" in conn.EnumerateClassNames(DeepInheritance=True)
        finally:
            conn.close()
    conn = secured.connect("admin", "wrong-password", https=https)
    with pytest.raises(pywbem.AuthError):
        conn.EnumerateClassNames()


def test_back_off_blocks_one_source_only_and_recovers(secured: Secured) -> None:
    port = secured.server.ports["http"]
    good, bad = basic("admin", PASSWORDS["admin"]), basic("admin", "not-the-password")
    for _ in range(2):  # the free failures
        status, headers, _ = raw_request(port, bad)
        assert status == 401 and "retry-after" not in headers
    status, headers, _ = raw_request(port, bad)  # the third starts the back-off (0.5 s)
    assert status == 401 and headers["retry-after"] == "1"
    started = time.monotonic()
    status, headers, body = raw_request(port, good)  # blocked: even the right password
    assert status == 429 and headers["retry-after"] == "1" and b"too many failed logins" in body
    with pytest.raises(pywbem.HTTPError) as info:
        secured.connect("admin").EnumerateClassNames()
    assert info.value.status == 429
    # another source is not slowed down
    status, _, _ = raw_request(port, good, source="127.0.0.2")
    assert status == 200
    assert time.monotonic() - started < 0.5
    time.sleep(0.6)
    status, _, body = raw_request(port, good)  # recovered
    assert status == 200 and b"TST_System" in body
    status, headers, _ = raw_request(port, bad)  # success cleared the count
    assert status == 401 and "retry-after" not in headers


def test_back_off_doubles_up_to_its_ceiling(secured: Secured) -> None:
    limiter = secured.auth.limiter
    waits = [limiter.failure("192.0.2.9") for _ in range(7)]
    assert waits == [0.0, 0.0, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert limiter.retry_after("192.0.2.9") > 1.5
    limiter.success("192.0.2.9")
    assert limiter.retry_after("192.0.2.9") == 0.0


def test_password_change_and_removal_take_effect_at_once(secured: Secured) -> None:
    conn = secured.connect("reader")
    assert conn.EnumerateClassNames()  # now remembered in the authenticator's cache
    secured.auth.users.set_password("reader", "a-new-password")
    with pytest.raises(pywbem.AuthError):
        secured.connect("reader").EnumerateClassNames()
    assert secured.connect("reader", "a-new-password").EnumerateClassNames()
    secured.auth.users.remove("reader")
    with pytest.raises(pywbem.AuthError):
        secured.connect("reader", "a-new-password").EnumerateClassNames()


def test_a_damaged_users_file_fails_closed(secured: Secured) -> None:
    assert secured.connect("admin").EnumerateClassNames()
    path = secured.auth.users.path
    path.write_text("{ not json")
    with pytest.raises(pywbem.AuthError):
        secured.connect("admin").EnumerateClassNames()


@pytest.mark.skipif(shutil.which("wbemcli") is None, reason="sblim wbemcli is not installed")
def test_sblim_wbemcli_with_and_without_credentials(secured: Secured, tmp_path: Path) -> None:
    port = secured.server.ports["http"]

    def wbemcli(url: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["wbemcli", "ecn", url], capture_output=True, text=True,
                              timeout=60, cwd=tmp_path, check=False)

    ok = wbemcli(f"http://admin:{PASSWORDS['admin']}@127.0.0.1:{port}/{NS}")
    assert ok.returncode == 0 and "TST_VirtualSystem" in ok.stdout, ok.stderr
    refused = wbemcli(f"http://127.0.0.1:{port}/{NS}")
    assert refused.returncode != 0 and "password required" in refused.stderr
