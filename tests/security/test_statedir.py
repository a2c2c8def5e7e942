"""The state directory made private at start (issue 9, finding 9), on plain directories; the
real ``vsms serve`` case is in test_outside_attack.py."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from vsms.cli.statedir import make_storage_roots, private_umask, tighten


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_tighten_takes_group_and_other_access(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "old").mkdir(parents=True)
    for d in (state, state / "old"):
        os.chmod(d, 0o755)
    for f, m in ((state / "vsms.log", 0o644), (state / "old" / "x", 0o666),
                 (state / "users.json", 0o644), (state / "key.pem", 0o600)):
        f.write_text("x")
        os.chmod(f, m)
    (state / "link").symlink_to("/etc/hostname")
    changed, warnings = tighten(state, [tmp_path / "storage"], leave=[state / "users.json"])
    assert (mode(state), mode(state / "old"), mode(state / "vsms.log"),
            mode(state / "old" / "x"), mode(state / "key.pem")) == (0o700, 0o700, 0o600, 0o600,
                                                                    0o600)
    assert mode(state / "users.json") == 0o644  # refused at start by its owner instead
    assert stat.S_IMODE(os.stat("/etc/hostname").st_mode) & 0o004  # links are not followed
    assert sorted(changed) == sorted(["state 0755->0700", "state/old 0755->0700",
                                      "state/vsms.log 0644->0600", "state/old/x 0666->0600"])
    assert warnings == []
    assert tighten(state, [], leave=[state / "users.json"]) == ([], [])  # nothing left to do


def test_storage_roots_inside_the_state_directory_stay_reachable(tmp_path: Path) -> None:
    state = tmp_path / "state"
    root = state / "data" / "root"
    (root / "vm").mkdir(parents=True)
    for d in (state, state / "data", root, root / "vm"):
        os.chmod(d, 0o755)
    (root / "vm" / "disk.vhd").write_text("x")
    os.chmod(root / "vm" / "disk.vhd", 0o644)
    changed, warnings = tighten(state, [root])
    assert changed == []
    assert all(mode(p) == 0o755 for p in (state, state / "data", root, root / "vm"))
    assert mode(root / "vm" / "disk.vhd") == 0o644
    assert len(warnings) == 1 and "keep the state directory and the storage roots apart" in \
        warnings[0]


def test_new_state_files_are_private_and_new_storage_roots_are_not(tmp_path: Path) -> None:
    with private_umask():
        tighten(tmp_path / "state", [])
        (tmp_path / "state" / "vsms.log").write_text("x")
        make_storage_roots([tmp_path / "a" / "b"])
    assert mode(tmp_path / "state") == 0o700
    assert mode(tmp_path / "state" / "vsms.log") == 0o600
    assert mode(tmp_path / "a") == 0o755 and mode(tmp_path / "a" / "b") == 0o755
