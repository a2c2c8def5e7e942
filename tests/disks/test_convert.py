"""vsms.disks.convert with the real qemu-img: format conversions, sparseness, progress,
cancellation and the refusals that must leave no target behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.disks.craft import MIB, allocated, differencing_vhd, differencing_vhdx, qemu_img
from vsms.cim.enums import VirtualHardDiskType as T
from vsms.disks import convert, qemuimg
from vsms.disks.copy import data_bytes
from vsms.errors import InUse, InvalidParameter, JobCancelled, NotSupported
from vsms.model.vm import ImageFormat as F

GIB = 1024 * MIB
ODD_SIZE = 100 * MIB + 3 * 512  # not CHS-friendly: a VHD output must keep it exact
SUFFIX = {F.VHD: "vhd", F.VHDX: "vhdx", F.QCOW2: "qcow2", F.RAW: "raw"}


def qemu_io(path: Path, fmt: F, *commands: str) -> None:
    args = [arg for command in commands for arg in ("-c", command)]
    subprocess.run(["qemu-io", "-f", fmt.value, *args, str(path)], check=True,
                   capture_output=True, timeout=120)


def image(path: Path, fmt: F, size: int, *commands: str) -> Path:
    qemuimg.create(str(path), size, fmt, fixed=False)
    qemu_io(path, fmt, *commands)
    return path


def qemu_img_children() -> list[int]:
    """qemu-img processes whose parent is this test process (none may outlive a call)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if name == "qemu-img" and ppid == os.getpid():
            found.append(int(entry))
    return found


@pytest.fixture(autouse=True)
def _no_big_files_left(tmp_path: Path) -> Iterator[None]:
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture(scope="module")
def sparse_vhd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 1 GiB dynamic VHD holding 16 MiB of data in two extents."""
    folder = tmp_path_factory.mktemp("sparse")
    path = image(folder / "data.vhd", F.VHD, GIB,
                 "write -P 0x11 0 8M", "write -P 0x22 700M 8M")
    yield path
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize(("name", "fmt"), [
    ("disk.vhd", F.VHD), ("snap.AVHD", F.VHD), ("disk.VHDX", F.VHDX), ("d.qcow2", F.QCOW2),
    ("d.img", F.RAW), ("/x/d.raw", F.RAW), ("d.iso", None), ("vhd", None), ("d.vhd.bak", None),
    ("", None)])
def test_format_for_path(name: str, fmt: F | None) -> None:
    assert convert.format_for_path(name) is fmt


@pytest.mark.parametrize("src_fmt", [F.VHD, F.VHDX])
def test_vhd_and_vhdx_to_qcow2(tmp_path: Path, src_fmt: F) -> None:
    src = image(tmp_path / f"src.{SUFFIX[src_fmt]}", src_fmt, ODD_SIZE,
                "write -P 0x5a 0 3M", "write -P 0xa5 50M 1M", "write -P 0x01 99M 1M")
    dst = tmp_path / "out.qcow2"
    convert.convert_file(str(src), src_fmt, str(dst), F.QCOW2)
    assert qemuimg.probe_format(str(dst)) is F.QCOW2
    info = qemuimg.info(str(dst), F.QCOW2)
    assert (info.type, info.virtual_size, info.parent_path) == (T.DYNAMIC, ODD_SIZE, "")
    assert qemuimg.check(str(dst), F.QCOW2) is None
    assert qemuimg.compare(str(src), src_fmt, str(dst), F.QCOW2)


def test_qcow2_to_vhd_and_back_keeps_contents_and_exact_size(tmp_path: Path) -> None:
    src = image(tmp_path / "src.qcow2", F.QCOW2, ODD_SIZE,
                "write -P 0x33 1M 2M", f"write -P 0x44 {ODD_SIZE - 512} 512")
    vhd = tmp_path / "mid.vhd"
    back = tmp_path / "back.qcow2"
    convert.convert_file(str(src), F.QCOW2, str(vhd), F.VHD)
    info = qemuimg.info(str(vhd), F.VHD)
    assert (info.format, info.type, info.virtual_size) == (F.VHD, T.DYNAMIC, ODD_SIZE)
    assert qemuimg.compare(str(src), F.QCOW2, str(vhd), F.VHD)
    convert.convert_file(str(vhd), F.VHD, str(back), F.QCOW2)
    assert qemuimg.compare(str(src), F.QCOW2, str(back), F.QCOW2)
    assert "Images are identical" in qemu_img("compare", "-f", "qcow2", "-F", "qcow2",
                                              str(src), str(back))


@pytest.mark.parametrize("dst_fmt", [F.QCOW2, F.RAW, F.VHD, F.VHDX])
def test_output_stays_sparse(tmp_path: Path, sparse_vhd: Path, dst_fmt: F) -> None:
    dst = tmp_path / f"out.{SUFFIX[dst_fmt]}"
    convert.convert_file(str(sparse_vhd), F.VHD, str(dst), dst_fmt)
    assert qemuimg.probe_format(str(dst)) is dst_fmt
    assert qemuimg.info(str(dst), dst_fmt).virtual_size == GIB
    assert allocated(dst) < 16 * MIB + 12 * MIB  # data plus format metadata, never the 1 GiB
    assert qemuimg.compare(str(sparse_vhd), F.VHD, str(dst), dst_fmt)


def test_progress_is_monotonic_and_ends_at_the_data_total(tmp_path: Path,
                                                          sparse_vhd: Path) -> None:
    seen: list[int] = []
    convert.convert_file(str(sparse_vhd), F.VHD, str(tmp_path / "p.qcow2"), F.QCOW2,
                         progress=seen.append)
    total = data_bytes(str(sparse_vhd))
    assert total >= 16 * MIB
    assert len(seen) >= 3  # qemu-img's own steps were read, not only the final total
    assert seen == sorted(set(seen))
    assert seen[0] >= 0 and seen[-1] == total


def test_cancel_mid_conversion_stops_qemu_img_and_leaves_no_target(tmp_path: Path) -> None:
    src = tmp_path / "big.raw"
    src.touch()
    os.truncate(src, GIB)
    qemu_io(src, F.RAW, "write -P 0x5a 0 1G")
    dst = tmp_path / "big.qcow2"
    cancel = threading.Event()
    seen: list[int] = []

    def on_progress(done: int) -> None:
        seen.append(done)
        cancel.set()

    start = time.monotonic()
    with pytest.raises(JobCancelled, match="cancelled"):
        convert.convert_file(str(src), F.RAW, str(dst), F.QCOW2, progress=on_progress,
                             cancel=cancel)
    assert time.monotonic() - start < 30
    assert seen and max(seen) < GIB
    assert not dst.exists()
    assert qemu_img_children() == []


def test_cancel_before_start_creates_nothing(tmp_path: Path, sparse_vhd: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    dst = tmp_path / "never.qcow2"
    with pytest.raises(JobCancelled):
        convert.convert_file(str(sparse_vhd), F.VHD, str(dst), F.QCOW2, cancel=cancel)
    assert not dst.exists()


def test_existing_target_is_refused_and_untouched(tmp_path: Path, sparse_vhd: Path) -> None:
    dst = tmp_path / "taken.qcow2"
    dst.write_bytes(b"somebody's file")
    with pytest.raises(InvalidParameter, match="already exists"):
        convert.convert_file(str(sparse_vhd), F.VHD, str(dst), F.QCOW2)
    assert dst.read_bytes() == b"somebody's file"
    link = tmp_path / "dangling.qcow2"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(InvalidParameter, match="already exists"):
        convert.convert_file(str(sparse_vhd), F.VHD, str(link), F.QCOW2)
    assert not (tmp_path / "nowhere").exists()


def test_missing_target_folder_is_refused(tmp_path: Path, sparse_vhd: Path) -> None:
    with pytest.raises(InvalidParameter, match="does not exist"):
        convert.convert_file(str(sparse_vhd), F.VHD, str(tmp_path / "no" / "d.qcow2"), F.QCOW2)


def test_failure_while_reading_a_truncated_source_leaves_no_target(tmp_path: Path) -> None:
    text = tmp_path / "text.raw"  # compressible but not trivially: many compressed clusters
    text.write_bytes(os.urandom(3 * MIB).hex().encode())
    packed = tmp_path / "packed.qcow2"
    qemu_img("convert", "-c", "-f", "raw", "-O", "qcow2", str(text), str(packed))
    os.truncate(packed, packed.stat().st_size * 2 // 3)
    assert qemuimg.info(str(packed), F.QCOW2).virtual_size == 6 * MIB  # it still opens
    dst = tmp_path / "out.vhd"
    with pytest.raises(InvalidParameter, match="error while reading") as caught:
        convert.convert_file(str(packed), F.QCOW2, str(dst), F.VHD)
    assert "intact qcow2 image" in str(caught.value)
    assert not dst.exists()
    assert qemu_img_children() == []


def test_truncated_vhd_is_refused_before_a_target_exists(tmp_path: Path) -> None:
    src = image(tmp_path / "cut.vhd", F.VHD, 64 * MIB, "write -P 0x77 0 16M")
    os.truncate(src, 8 * MIB)
    dst = tmp_path / "out.qcow2"
    with pytest.raises(InvalidParameter, match="truncated"):
        convert.convert_file(str(src), F.VHD, str(dst), F.QCOW2)
    assert not dst.exists()


def test_wrong_source_format_is_refused(tmp_path: Path, sparse_vhd: Path) -> None:
    dst = tmp_path / "out.qcow2"
    with pytest.raises(InvalidParameter, match="holds a VHD image, not VHDX"):
        convert.convert_file(str(sparse_vhd), F.VHDX, str(dst), F.QCOW2)
    with pytest.raises(InvalidParameter, match="unknown disk image format"):
        convert.convert_file(str(sparse_vhd), F.VHD, str(dst), "vmdk")  # type: ignore[arg-type]
    assert not dst.exists()


def test_source_in_use_by_a_writer_is_reported_as_in_use(tmp_path: Path) -> None:
    src = image(tmp_path / "busy.qcow2", F.QCOW2, 16 * MIB, "write -P 0x10 0 1M")
    writer = subprocess.Popen(["qemu-io", "-f", "qcow2", "-c", "sleep 60000", str(src)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # qemu-io has opened the image and holds its write lock
        dst = tmp_path / "out.vhdx"
        with pytest.raises(InUse, match="another process"):
            convert.convert_file(str(src), F.QCOW2, str(dst), F.VHDX)
        assert not dst.exists()
    finally:
        writer.kill()
        writer.wait(timeout=10)


def test_vhd_and_vhdx_differencing_sources_are_refused(tmp_path: Path) -> None:
    vhd_child = tmp_path / "snap.avhd"
    differencing_vhd(vhd_child, 8 * MIB, ".\\base.vhd", "C:\\VMs\\base.vhd", "base.vhd")
    vhdx_child = tmp_path / "snap.avhdx"
    differencing_vhdx(vhdx_child, 8 * MIB, {"relative_path": ".\\base.vhdx"})
    for child, fmt in ((vhd_child, F.VHD), (vhdx_child, F.VHDX)):
        dst = tmp_path / "flat.qcow2"
        with pytest.raises(NotSupported, match="differencing disk"):
            convert.convert_file(str(child), fmt, str(dst), F.QCOW2)
        assert not dst.exists()
