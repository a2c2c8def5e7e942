"""Undo handlers (idempotent, on real files and libvirt's test driver) and ``run_now``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vsms.errors import InvalidParameter, OperationFailed
from vsms.mapping.vmjson import to_json
from vsms.model.vm import VirtualSystem, default_controllers, new_guid
from vsms.operations.define import DefineSystem
from vsms.operations.modify import ReplaceSystem
from vsms.operations.undo import OpContext, run_now, undo_handlers
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


def test_handlers_cover_the_contract_kinds(host: VirtHost, store: Store) -> None:
    assert set(undo_handlers(host, store)) == {
        "remove_file", "remove_tree", "undefine", "redefine", "unmark_consumed", "rename"}


def test_file_handlers_are_idempotent(host: VirtHost, store: Store, tmp_path: Path) -> None:
    h = undo_handlers(host, store)
    f = tmp_path / "f"
    f.write_text("x")
    tree = tmp_path / "t" / "sub"
    tree.mkdir(parents=True)
    (tree / "file").write_text("y")
    for _ in range(2):
        h["remove_file"]({"path": str(f)})
        h["remove_tree"]({"path": str(tmp_path / "t")})
    assert not f.exists() and not (tmp_path / "t").exists()
    with pytest.raises(OperationFailed):
        h["remove_tree"]({"path": "/"})
    src, dst = tmp_path / "src", tmp_path / "dst"
    dst.write_text("moved")
    for _ in range(2):
        h["rename"]({"src": str(src), "dst": str(dst)})
    assert src.read_text() == "moved" and not dst.exists()


def test_libvirt_handlers(host: VirtHost, store: Store) -> None:
    h = undo_handlers(host, store)
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


class Failing:
    """An operation that registers undo steps, then fails."""

    def __init__(self, steps: list[tuple[str, dict[str, Any]]]) -> None:
        self.steps = steps

    def run(self, ctx: OpContext) -> None:
        for kind, args in self.steps:
            ctx.add_undo(kind, **args)
        raise InvalidParameter("the work failed")


def test_run_now_replays_undo_in_reverse_and_keeps_the_first_error(tmp_path: Path) -> None:
    calls: list[str] = []

    def record(name: str) -> Any:
        def handler(args: dict[str, Any]) -> None:
            calls.append(f"{name}:{args['n']}")
            if args["n"] == 2:
                raise OSError("teardown trouble")
        return handler

    handlers = {"a": record("a"), "b": record("b")}
    with pytest.raises(InvalidParameter, match="the work failed"):
        run_now(Failing([("a", {"n": 1}), ("b", {"n": 2}), ("a", {"n": 3})]), handlers)
    assert calls == ["a:3", "b:2", "a:1"]
    with pytest.raises(OperationFailed, match="unknown kind"):
        run_now(Failing([("nope", {})]), handlers)


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
