"""One import-directory check: the import methods and read_export refuse the same things with
the same reasons (issue 10 item 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsms.errors import InvalidParameter
from vsms.exportdir.reader import read_export
from vsms.operations.import_ import check_import_directory
from vsms.operations.paths import StorageRoots
from vsms.store.db import Store


@pytest.mark.parametrize("case", ["missing", "dangling link", "file", "export root"])
def test_import_methods_and_reader_give_one_reason(tmp_path: Path, case: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    target = root / "exp"
    if case == "dangling link":
        target.symlink_to(root / "gone")
    elif case == "file":
        target.write_text("not a folder")
    elif case == "export root":
        (target / "vm1" / "Virtual Machines").mkdir(parents=True)
        (target / "vm1" / "config.xml").write_text("<config/>")
    store = Store(tmp_path / "db.sqlite3")
    try:
        with pytest.raises(InvalidParameter) as by_method:
            check_import_directory(StorageRoots([root]), store, str(target))
    finally:
        store.close()
    with pytest.raises(InvalidParameter) as by_reader:
        read_export(target, verify=False)
    method_reason = str(by_method.value).split(" ", 2)[2]
    reader_reason = str(by_reader.value).split("' ", 1)[1]
    assert method_reason == reader_reason
    expected = {"missing": "does not exist", "dangling link": "does not exist",
                "file": "is not a directory", "export root": "is the export root"}[case]
    assert method_reason.startswith(expected)
