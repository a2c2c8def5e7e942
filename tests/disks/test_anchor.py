"""Folders opened through handles (vsms.disks.anchor) and the target reservation table."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vsms.disks import anchor
from vsms.disks.anchor import Identity
from vsms.errors import AccessDenied, InUse, InvalidParameter
from vsms.operations.reservations import Targets


def test_open_dir_refuses_a_symbolic_link_anywhere_on_the_way(tmp_path: Path) -> None:
    real = tmp_path / "real" / "sub"
    real.mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with anchor.open_dir(real, [tmp_path]) as d:
        assert d.path == str(real) and d.identity == Identity.of(os.stat(real))
    with pytest.raises(AccessDenied, match="symbolic link"):
        anchor.open_dir(tmp_path / "link" / "sub", [tmp_path])
    with pytest.raises(AccessDenied, match="outside the storage roots"):
        anchor.open_dir(tmp_path, [real])
    with pytest.raises(InvalidParameter, match="does not exist"):
        anchor.open_dir(tmp_path / "missing", [tmp_path])


def test_open_dir_creates_missing_folders_through_the_callback(tmp_path: Path) -> None:
    made: list[str] = []

    def make(d: anchor.Dir, name: str) -> None:
        os.mkdir(name, dir_fd=d.fd)
        made.append(os.path.join(d.path, name))

    with anchor.open_dir(tmp_path / "a" / "b", [tmp_path], make=make) as d:
        assert d.path == str(tmp_path / "a" / "b")
    assert made == [str(tmp_path / "a"), str(tmp_path / "a" / "b")]


def test_a_handle_keeps_its_folder_when_the_name_is_swapped(tmp_path: Path) -> None:
    """What the jobs rely on: paths under /proc/self/fd/N follow the folder, not its name."""
    folder, outside = tmp_path / "folder", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    with anchor.open_dir(folder, [tmp_path]) as d:
        os.rename(folder, tmp_path / "moved")
        folder.symlink_to(outside)
        Path(d.proc("new.txt")).write_text("inside")
    assert (tmp_path / "moved" / "new.txt").read_text() == "inside"
    assert list(outside.iterdir()) == []


def test_rename_noreplace_never_replaces(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    with anchor.open_dir(tmp_path) as d:
        with pytest.raises(FileExistsError):
            anchor.rename_noreplace(d, "a", d, "b")
        anchor.rename_noreplace(d, "a", d, "c")
    assert (tmp_path / "b").read_text() == "b" and (tmp_path / "c").read_text() == "a"


def test_remove_tree_removes_only_the_recorded_folder_and_not_through_links(
        tmp_path: Path) -> None:
    ours = tmp_path / "ours"
    (ours / "sub").mkdir(parents=True)
    (ours / "sub" / "f").write_text("x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    (ours / "sub" / "link").symlink_to(outside)
    ident = Identity.of(os.stat(ours))
    with anchor.open_dir(tmp_path) as d:
        assert not anchor.remove_tree(d, "ours", Identity(ident.dev, ident.ino + 1))
        assert anchor.remove_tree(d, "ours", ident)
        assert not anchor.remove_tree(d, "ours", ident)  # idempotent
    assert not ours.exists() and (outside / "keep").read_text() == "keep"


def test_targets_refuse_overlapping_paths_until_released(tmp_path: Path) -> None:
    table = Targets()
    held = table.reserve([tmp_path / "exp" / "vm1"], "the export of 'vm1'")
    for clash in (tmp_path / "exp" / "vm1", tmp_path / "exp" / "vm1" / "disk.vhd",
                  tmp_path / "exp"):
        with pytest.raises(InUse, match="the export of 'vm1'"):
            table.check([clash])
    table.check([tmp_path / "exp" / "vm2"])
    other = table.reserve([tmp_path / "exp" / "vm2"], "another")
    held.release()
    held.release()
    assert table.held() == [tmp_path / "exp" / "vm2"]
    other.release()
    table.reserve([tmp_path / "exp"], "now free").release()
