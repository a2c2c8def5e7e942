"""A tiny bootable Linux guest for the tests, built from Debian packages (root only).

Product code never imports this module. ``guest_image(cache)`` returns a dynamic VHD that boots
on an i440fx VM: an MBR with syslinux's boot code, one FAT partition holding syslinux, the
kernel of ``linux-image-amd64`` and an initramfs with ``busybox-static``, the kernel modules for
IDE/virtio disks, virtio-net/e1000, ext2 and the ACPI power button, and the init of
``vsms.testing.guestinit``. The two packages come from the apt cache or ``apt-get download``
(never installed on the host); syslinux, mtools and dosfstools come from the host (setup.sh).
The image is cached under ``cache/<key>/guest.vhd`` where the key hashes every input (package
versions, init, module list, this builder's version), so it is built once per machine.

``data_disk(path, files)`` makes the guest's data disk: a dynamic VHD with one ext2 file
system (label ``VSMSDATA``) holding ``files``. ``domain_type(image, cache)`` tells whether this
host's KVM boots the guest ("auto") or the guests must use TCG ("qemu"). See docs/guest.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from vsms.testing import guestinit

BUILDER_VERSION = "1"
PACKAGES = ("linux-image-amd64", "busybox-static")
# Modules the guest loads (their dependencies are added): disks on IDE (ata_piix), virtio and
# virtio-scsi, NICs virtio-net and e1000, ext2 (served by ext4, which wants crc32c), and the
# ACPI power button.
MODULES = ("ata_piix", "ata_generic", "sd_mod", "virtio_pci", "virtio_blk", "virtio_scsi",
           "virtio_net", "e1000", "crc32c_generic", "ext4", "button", "evdev")
SYSLINUX_MBR = Path("/usr/lib/syslinux/mbr/mbr.bin")
KERNEL_ARGS = "console=ttyS0,115200 panic=-1 loglevel=4"
DISK_MIB = 32
PART_START = 2048  # sectors: the partition starts at 1 MiB
SECTOR = 512
TIMEOUT = 300


class GuestBuildError(RuntimeError):
    """The guest could not be built (a missing tool or package, a failing command)."""


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True,
                              timeout=TIMEOUT)
    except FileNotFoundError as exc:
        raise GuestBuildError(f"{cmd[0]} is missing: run scripts/setup.sh") from exc
    except subprocess.CalledProcessError as exc:
        raise GuestBuildError(f"{' '.join(cmd)} failed ({exc.returncode}): "
                              f"{exc.stderr.strip()[-500:]}") from exc
    return done.stdout


def resolve(package: str) -> tuple[str, str]:
    """(name, version) of the package apt would download for ``package``, following a
    metapackage such as linux-image-amd64 to the kernel package it depends on."""
    name = package
    if package == "linux-image-amd64":
        deps = re.findall(r"Depends: (linux-image-[0-9][^\s]*)", _run(["apt-cache", "depends",
                                                                         package]))
        if not deps:
            raise GuestBuildError("apt-cache knows no linux-image-amd64: run apt-get update")
        name = deps[0]
    found = re.search(r"Candidate: (\S+)", _run(["apt-cache", "policy", name]))
    if found is None or found.group(1) == "(none)":
        raise GuestBuildError(f"apt-cache has no candidate for {name}: run apt-get update")
    return name, found.group(1)


def fetch_deb(name: str, version: str, debs: Path) -> Path:
    """The .deb of ``name`` ``version``: from the apt cache, from ``debs``, or downloaded
    into ``debs`` with apt-get download."""
    pattern = f"{name}_{version.replace(':', '%3a')}_*.deb"
    for where in (Path("/var/cache/apt/archives"), debs):
        hits = sorted(where.glob(pattern))
        if hits:
            return hits[0]
    debs.mkdir(parents=True, exist_ok=True)
    _run(["apt-get", "download", f"{name}={version}"], cwd=debs)
    hits = sorted(debs.glob(pattern))
    if not hits:
        raise GuestBuildError(f"apt-get download {name}={version} left no {pattern}")
    return hits[0]


def cache_key(versions: list[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    for part in ([BUILDER_VERSION, KERNEL_ARGS, guestinit.INIT, guestinit.POWER_BUTTON,
                  " ".join(MODULES)] + [f"{n}={v}" for n, v in versions]):
        h.update(part.encode() + b"\0")
    if SYSLINUX_MBR.exists():
        h.update(SYSLINUX_MBR.read_bytes())
    return h.hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def guest_image(cache: Path) -> Path:
    """The cached guest VHD under ``cache`` (built first when missing; concurrent callers wait
    for one build). Read-only: copy it before attaching it to a VM."""
    cache.mkdir(parents=True, exist_ok=True)
    os.chmod(cache, 0o755)
    versions = [resolve(p) for p in PACKAGES]
    final = cache / cache_key(versions)
    image = final / "guest.vhd"
    if image.exists():
        return image
    with _locked(cache / ".lock"):
        if image.exists():
            return image
        debs = [fetch_deb(n, v, cache / "debs") for n, v in versions]
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
        try:
            _build(debs[0], debs[1], work)
            os.chmod(work, 0o755)
            os.chmod(work / "guest.vhd", 0o444)
            for leftover in work.iterdir():
                if leftover.name != "guest.vhd":
                    _remove(leftover)
            os.rename(work, final)
        finally:
            _remove(work)
    return image


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _build(kernel_deb: Path, busybox_deb: Path, work: Path) -> None:
    tree = work / "tree"
    _run(["dpkg-deb", "-x", str(kernel_deb), str(tree)])
    _run(["dpkg-deb", "-x", str(busybox_deb), str(tree)])
    vmlinuz = sorted((tree / "boot").glob("vmlinuz-*"))
    mod_roots = sorted((tree / "lib" / "modules").iterdir())
    if not vmlinuz or not mod_roots:
        raise GuestBuildError(f"{kernel_deb.name} holds no kernel or no modules")
    initrd = work / "initrd.gz"
    initrd.write_bytes(_initramfs(tree / "bin" / "busybox", mod_roots[0]))
    raw = work / "disk.raw"
    _boot_disk(raw, vmlinuz[0], initrd, work)
    _run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "vpc", "-o",
          "subformat=dynamic,force_size=on", str(raw), str(work / "guest.vhd")])


def module_files(root: Path, wanted: tuple[str, ...] = MODULES) -> list[Path]:
    """The .ko files of ``wanted`` and their dependencies under the modules tree ``root``, in
    load order (each after the ones it depends on)."""
    index = {p.name.removesuffix(".ko").replace("-", "_"): p for p in root.rglob("*.ko")}
    ordered: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        key = name.replace("-", "_")
        if key in seen:
            return
        seen.add(key)
        path = index.get(key)
        if path is None:
            raise GuestBuildError(f"module {name} is not in {root} (built in? see config-*)")
        for dep in _depends(path):
            visit(dep)
        ordered.append(path)

    for name in wanted:
        visit(name)
    return ordered


def _depends(ko: Path) -> list[str]:
    """The ``depends=`` of a module's .modinfo section."""
    found = re.search(rb"\0depends=([^\0]*)\0", ko.read_bytes())
    if found is None or not found.group(1):
        return []
    return found.group(1).decode().split(",")


def _initramfs(busybox: Path, mod_root: Path) -> bytes:
    """A gzip'd newc cpio: busybox, the init, the modules and the power-button handler."""
    arc = _Cpio()
    for d in ("bin", "dev", "etc", "etc/acpi", "etc/acpi/PWRF", "lib", "lib/modules", "proc",
              "sys", "tmp", "data"):
        arc.add(d, 0o040755)
    arc.add("dev/console", 0o020600, rdev=(5, 1))
    arc.add("bin/busybox", 0o100755, busybox.read_bytes())
    arc.add("init", 0o100755, guestinit.INIT.encode())
    arc.add("etc/acpi/PWRF/00000080", 0o100755, guestinit.POWER_BUTTON.encode())
    mods = module_files(mod_root)
    for ko in mods:
        arc.add(f"lib/modules/{ko.name}", 0o100644, ko.read_bytes())
    arc.add("etc/modules.order", 0o100644, "".join(f"{k.name}\n" for k in mods).encode())
    return gzip.compress(arc.finish(), compresslevel=6, mtime=0)


class _Cpio:
    """A newc ("070701") cpio archive, written without touching the host's device nodes."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.ino = 1

    def add(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
            ) -> None:
        fields = [self.ino, mode, 0, 0, 2 if mode & 0o040000 else 1, 0, len(data), 0, 0,
                  rdev[0], rdev[1], len(name) + 1, 0]
        self.ino += 1
        head = b"070701" + b"".join(f"{v:08X}".encode() for v in fields)
        self.parts += [head, name.encode() + b"\0", _pad(len(head) + len(name) + 1), data,
                       _pad(len(data))]

    def finish(self) -> bytes:
        self.add("TRAILER!!!", 0)
        return b"".join(self.parts)


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _boot_disk(raw: Path, vmlinuz: Path, initrd: Path, work: Path) -> None:
    """``raw``: MBR (syslinux boot code, one bootable FAT16 partition from 1 MiB) whose
    partition holds syslinux, the kernel and the initramfs."""
    part = work / "part.img"
    sectors = DISK_MIB * 2048 - PART_START
    _run(["mkfs.fat", "-F", "16", "-n", "VSMSBOOT", "-C", str(part), str(sectors // 2)])
    _run(["syslinux", "--install", str(part)])
    cfg = work / "syslinux.cfg"
    cfg.write_text("DEFAULT guest\nPROMPT 0\nTIMEOUT 0\nLABEL guest\n  KERNEL /vmlinuz\n"
                   f"  INITRD /initrd.gz\n  APPEND {KERNEL_ARGS}\n")
    shutil.copyfile(vmlinuz, work / "vmlinuz")
    for f in ("vmlinuz", str(initrd.name), "syslinux.cfg"):
        _run(["mcopy", "-i", str(part), str(work / f), "::/"])
    mbr = bytearray(SYSLINUX_MBR.read_bytes()[:440].ljust(SECTOR, b"\0"))
    # one entry: bootable, CHS fields unused (0xFEFFFF), type 0x06 (FAT16), LBA start/length
    entry = (bytes([0x80, 0xFE, 0xFF, 0xFF, 0x06, 0xFE, 0xFF, 0xFF])
             + PART_START.to_bytes(4, "little") + sectors.to_bytes(4, "little"))
    mbr[446:462] = entry
    mbr[510:512] = b"\x55\xaa"
    with open(raw, "wb") as out, open(part, "rb") as src:
        out.write(mbr)
        out.seek(PART_START * SECTOR)
        shutil.copyfileobj(src, out, 1 << 20)
        out.truncate(DISK_MIB << 20)


def data_disk(path: Path, files: dict[str, bytes], size_mib: int = 16) -> None:
    """A dynamic VHD at ``path`` with one ext2 file system labelled VSMSDATA holding
    ``files`` (name -> content, at its root)."""
    with tempfile.TemporaryDirectory(prefix="vsms-data-") as tmp:
        src = Path(tmp) / "files"
        src.mkdir()
        for name, content in files.items():
            (src / name).write_bytes(content)
        raw = Path(tmp) / "data.raw"
        _run(["mke2fs", "-q", "-t", "ext2", "-L", guestinit.DATA_LABEL, "-d", str(src),
              str(raw), f"{size_mib}M"])
        _run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "vpc", "-o",
              "subformat=dynamic,force_size=on", str(raw), str(path)])


def domain_type(image: Path, cache: Path) -> str:
    """"auto" when QEMU with KVM boots ``image`` to its init here, else "qemu" (TCG). KVM may
    be offered yet unable to boot a stock kernel (a paravirtual nested KVM such as PVM); the
    verdict is kept in ``cache`` per image and host kernel, so the probe runs once."""
    if not os.path.exists("/dev/kvm"):
        return "qemu"
    verdict = cache / f"kvm-{image.parent.name}-{os.uname().release}"
    if not verdict.exists():
        verdict.write_text("auto" if kvm_boots(image) else "qemu")
    return verdict.read_text().strip()


def kvm_boots(image: Path, timeout: float = 20.0) -> bool:
    """Whether QEMU with KVM boots the guest image to its init within ``timeout``."""
    proc = subprocess.Popen(
        ["qemu-system-x86_64", "-machine", "pc,accel=kvm", "-m", "128", "-snapshot",
         "-drive", f"file={image},format=vpc,if=ide", "-display", "none",
         "-monitor", "none", "-nic", "none", "-serial", "stdio"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    found = threading.Event()

    def scan() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            if f"{guestinit.LINE_PREFIX} boot".encode() in raw:
                found.set()
                return

    threading.Thread(target=scan, daemon=True).start()
    found.wait(timeout)
    proc.kill()
    proc.wait(10)
    return found.is_set()


def main(argv: list[str] | None = None) -> int:
    """``python -m vsms.testing.guestos [CACHE]``: build (or find) the guest image and print
    its path."""
    import sys
    args = sys.argv[1:] if argv is None else argv
    cache = Path(args[0]) if args else Path("/var/tmp/vsms-tests/guest-cache")
    try:
        print(guest_image(cache))
    except GuestBuildError as exc:
        print(f"build-guest: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
