"""Undo handlers (idempotent, on real files and libvirt's test driver) and ``run_now``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vsms.errors import AccessDenied, InvalidParameter, OperationFailed
from vsms.jobs.undo import UndoBook, UndoStep
from vsms.mapping.vmjson import to_json
from vsms.model.vm import VirtualSystem, default_controllers, new_guid
from vsms.operations.define import DefineSystem
from vsms.operations.modify import ReplaceSystem
from vsms.operations.undo import STEPS, OpContext, RemoveFile, run_now, undo_handlers
from vsms.store.db import Store
from vsms.virt.host import VirtHost


@pytest.fixture
def host() -> Iterator[VirtHost]:
    h = VirtHost("test:///default")
    try:
        yield h
    finally:
        h.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "vsms.sqlite3")
    try:
        yield s
    finally:
        s.close()


def vm(name: str = "undo-test") -> VirtualSystem:
    return VirtualSystem(guid=new_guid(), name=name, controllers=default_controllers())


class Rows:
    """Run journal rows (kind, JSON args) as recovery does: loaded into typed steps, run."""

    def __init__(self, book: UndoBook[Any]) -> None:
        self.book = book

    def __getitem__(self, kind: str) -> Callable[[dict[str, Any]], None]:
        return lambda args: self.book.run(self.book.load(kind, args))


def test_one_class_per_contract_kind(host: VirtHost, store: Store) -> None:
    book = undo_handlers(host, store)
    assert book.kinds == {"remove_file", "remove_tree", "undefine", "redefine",
                          "unmark_consumed", "remove_switch_port", "snapshot_live_merge"}
    assert {cls.kind for cls in STEPS} == book.kinds
    step = RemoveFile("/r", "d.vhd", 1, 2)
    assert book.load(step.kind, step.args()) == step  # what the journal stores, read back
    assert book.load("remove_file", {"path": "/r/d.vhd"}) == RemoveFile("/r", "d.vhd")
    assert step.describe() == "remove /r/d.vhd"
    with pytest.raises(LookupError):
        book.load("rename", {"src": "/a", "dst": "/b"})


def _made(path: Path) -> dict[str, Any]:
    st = os.lstat(path)
    return {"parent": str(path.parent), "name": path.name, "dev": st.st_dev, "ino": st.st_ino}


def test_file_handlers_remove_what_was_made_and_are_idempotent(
        host: VirtHost, store: Store, tmp_path: Path) -> None:
    h = Rows(undo_handlers(host, store))
    f = tmp_path / "f"
    f.write_text("x")
    tree = tmp_path / "t" / "sub"
    tree.mkdir(parents=True)
    (tree / "file").write_text("y")
    file_rec, tree_rec = _made(f), _made(tmp_path / "t")
    for _ in range(2):
        h["remove_file"](file_rec)
        h["remove_tree"](tree_rec)
    assert not f.exists() and not (tmp_path / "t").exists()
    with pytest.raises(OperationFailed):
        h["remove_tree"]({"path": "/"})


def test_file_handlers_spare_another_file_at_the_same_name(
        host: VirtHost, store: Store, tmp_path: Path) -> None:
    """An undo record removes the inode it recorded, never what took its name since."""
    h = Rows(undo_handlers(host, store))
    f = tmp_path / "disk.qcow2"
    f.write_text("ours")
    rec = _made(f)
    other = tmp_path / "other"
    other.write_text("someone else's")
    os.replace(other, f)  # another inode at the same name
    d, d2 = tmp_path / "dir", tmp_path / "dir2"
    d.mkdir()
    dir_rec = _made(d)
    d2.mkdir()
    (d2 / "theirs").write_text("keep")
    d.rmdir()
    d2.rename(d)
    h["remove_file"](rec)
    h["remove_tree"](dir_rec)
    assert f.read_text() == "someone else's" and (d / "theirs").read_text() == "keep"


def test_unconfirmed_and_legacy_records_remove_only_empty_entries(
        host: VirtHost, store: Store, tmp_path: Path) -> None:
    """A record without an identity (a crash between creation and the journal's update, or a
    journal from an older vsms) removes an empty file or folder, nothing that holds data."""
    h = Rows(undo_handlers(host, store))
    empty, full = tmp_path / "empty.vhd", tmp_path / "full.vhd"
    empty.touch()
    full.write_text("data")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "x").write_text("data")
    h["remove_file"]({"path": str(empty)})
    h["remove_file"]({"parent": str(tmp_path), "name": full.name, "dev": None, "ino": None})
    h["remove_tree"]({"path": str(folder)})
    assert not empty.exists() and full.exists() and (folder / "x").exists()
    h["remove_file"]({"parent": str(tmp_path), "name": full.name, "made": False})
    assert full.exists()


def test_file_handlers_follow_no_symbolic_link(host: VirtHost, store: Store,
                                               tmp_path: Path) -> None:
    """A folder on the recorded path swapped for a link to elsewhere: nothing is removed
    there, and the step reports why."""
    h = Rows(undo_handlers(host, store))
    inside, outside = tmp_path / "root" / "dir", tmp_path / "outside"
    inside.mkdir(parents=True)
    outside.mkdir()
    victim = outside / "disk.vhd"
    victim.write_text("precious")
    made = inside / "disk.vhd"
    made.write_text("ours")
    rec = _made(made)
    os.link(made, tmp_path / "hardlink")  # the same inode stays reachable from outside
    os.rename(inside, tmp_path / "root" / "moved")
    os.symlink(outside, inside)
    os.unlink(outside / "disk.vhd")
    os.link(tmp_path / "hardlink", victim)  # even the very inode, reached through the link
    with pytest.raises(AccessDenied, match="symbolic link"):
        h["remove_file"](rec)
    assert victim.read_text() == "ours"


def test_libvirt_handlers(host: VirtHost, store: Store) -> None:
    h = Rows(undo_handlers(host, store))
    old = vm()
    host.define(old)
    changed = VirtualSystem(**{**old.__dict__, "name": "changed", "memory_mb": 1024})
    host.define(changed)
    h["redefine"]({"vm": to_json(old)})
    assert host.get_system(old.guid) == old
    host.start(old.guid)
    for _ in range(2):
        h["undefine"]({"guid": old.guid})
    assert host.get_system(old.guid) is None
    store.mark_consumed("/some/dir", old.guid)
    h["unmark_consumed"]({"directory": "/some/dir"})
    assert store.consumed("/some/dir") is None


@dataclass(frozen=True)
class Mark(UndoStep[list[str]]):
    kind = "mark"
    n: int

    def describe(self) -> str:
        return f"mark {self.n}"

    def undo(self, env: list[str]) -> None:
        env.append(f"mark:{self.n}")
        if self.n == 2:
            raise OSError("teardown trouble")


@dataclass(frozen=True)
class Unknown(Mark):
    kind = "nope"


class Failing:
    """An operation that registers undo steps, then fails."""

    def __init__(self, steps: list[UndoStep[Any]]) -> None:
        self.steps = steps

    def run(self, ctx: OpContext) -> None:
        for step in self.steps:
            ctx.add_undo(step)
        raise InvalidParameter("the work failed")


def test_run_now_replays_undo_in_reverse_and_keeps_the_first_error() -> None:
    calls: list[str] = []
    book = UndoBook([Mark], calls)
    with pytest.raises(InvalidParameter, match="the work failed"):
        run_now(Failing([Mark(1), Mark(2), Mark(3)]), book)
    assert calls == ["mark:3", "mark:2", "mark:1"]
    with pytest.raises(OperationFailed, match="unknown kind"):
        run_now(Failing([Unknown(1)]), book)


def test_define_and_replace_roll_back(host: VirtHost, store: Store) -> None:
    handlers = undo_handlers(host, store)
    new = vm("defined")
    result = run_now(DefineSystem(host, new), handlers)
    assert result == {"guid": new.guid} and host.get_system(new.guid) == new

    broken = VirtualSystem(**{**new.__dict__, "memory_mb": 0})  # refused by the backend
    with pytest.raises(InvalidParameter):
        run_now(ReplaceSystem(host, new, broken), handlers)
    assert host.get_system(new.guid) == new
    host.undefine(new.guid)
