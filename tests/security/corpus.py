"""The corpus of malformed exports: each case damages a copy of a valid export in one way.

A case is a function that changes the per-VM export directory it is given, the words its
rejection must contain, and whether the quick read of GetVirtualSystemImportSettingData (no
checksums, no image checks) can see the damage. The corpus is generated at test time from a
real export, so the repository stays small; ``python -m tests.security.corpus EXPORT OUT``
writes every case as a directory for a look by hand.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import socket
import stat
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vsms.exportdir.layout import CONFIG, MANIFEST, VHD_DIR, VMS_DIR

DISK = f"{VHD_DIR}/src-disk.vhd"
OTHER_GUID = "0BADF00D-0000-4000-8000-00000000BEEF"
LAUGHS = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
          + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">\n'
                    for i in range(1, 10))
          + ']>\n<vsms-export format="1">&lol9;</vsms-export>\n').encode()
EXTERNAL = (b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n'
            b'<CIM CIMVERSION="2.0">&e;</CIM>\n')


@dataclass
class Ctx:
    """What a case may use besides the directory: a folder outside it (and outside every
    storage root when the tests run), and clean-up actions run after the case."""

    outside: Path
    cleanups: list[Callable[[], object]] = field(default_factory=list)


@dataclass(frozen=True)
class Case:
    name: str
    damage: Callable[[Path, Ctx], object]
    says: str  # a fragment of the rejection (the job's ErrorDescription)
    quick: bool = True  # GetVirtualSystemImportSettingData sees it too


# ------------------------------------------------------------------------------ helpers
def exp_of(d: Path) -> Path:
    (exp,) = (d / VMS_DIR).glob("*.exp")
    return exp


def rehash(d: Path) -> None:
    """Write a manifest that matches the regular files as they are now (links not followed)."""
    lines = []
    for dirpath, _, files in os.walk(d):
        for f in files:
            p = Path(dirpath, f)
            rel = p.relative_to(d).as_posix()
            if rel != MANIFEST and stat.S_ISREG(os.lstat(p).st_mode):
                lines.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {rel}\n")
    (d / MANIFEST).write_text("".join(sorted(lines, key=lambda x: x[66:])), encoding="utf-8")


def put(rel: str, data: bytes, *, hashed: bool = True) -> Callable[[Path, Ctx], None]:
    def damage(d: Path, ctx: Ctx) -> None:
        target = exp_of(d) if rel == "EXP" else d / rel
        target.write_bytes(data)
        if hashed:
            rehash(d)
    return damage


def edit(rel: str, old: str, new: str) -> Callable[[Path, Ctx], None]:
    def damage(d: Path, ctx: Ctx) -> None:
        target = exp_of(d) if rel == "EXP" else d / rel
        text = target.read_text(encoding="utf-8")
        assert old in text, (old, rel)
        target.write_text(text.replace(old, new), encoding="utf-8")
        rehash(d)
    return damage


def truncated(rel: str) -> Callable[[Path, Ctx], None]:
    def damage(d: Path, ctx: Ctx) -> None:
        target = exp_of(d) if rel == "EXP" else d / rel
        data = target.read_bytes()
        target.write_bytes(data[: len(data) // 2])
        rehash(d)
    return damage


def huge(rel: str, size: int) -> Callable[[Path, Ctx], None]:
    def damage(d: Path, ctx: Ctx) -> None:
        target = exp_of(d) if rel == "EXP" else d / rel
        with open(target, "r+b") as fh:  # sparse: the size is what counts
            fh.truncate(size)
    return damage


def garbage(n: int) -> bytes:
    return random.Random(n).randbytes(n)


def replace_disk(make: Callable[[Path, Ctx], None]) -> Callable[[Path, Ctx], None]:
    def damage(d: Path, ctx: Ctx) -> None:
        disk = d / DISK
        disk.unlink()
        make(disk, ctx)
        rehash(d)
    return damage


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True, timeout=60)


def _qcow2(path: Path, ctx: Ctx) -> None:
    qemu_img("create", "-q", "-f", "qcow2", str(path), "64M")


def _raw(path: Path, ctx: Ctx) -> None:
    path.write_bytes(b"\x5a" * (1 << 20))


def _fix_checksum(block: bytearray, at: int) -> None:
    struct.pack_into(">I", block, at, 0)
    struct.pack_into(">I", block, at, ~sum(block) & 0xFFFFFFFF)


def _lying_fixed_vhd(path: Path, ctx: Ctx) -> None:
    """A fixed VHD of 1 MiB whose (valid) footer claims 1 GiB."""
    qemu_img("create", "-q", "-f", "vpc", "-o", "subformat=fixed,force_size=on", str(path), "1M")
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.seek(size - 512)
        footer = bytearray(fh.read(512))
        struct.pack_into(">QQ", footer, 40, 1 << 30, 1 << 30)
        _fix_checksum(footer, 64)
        fh.seek(size - 512)
        fh.write(footer)


def _damaged_footers(path: Path, ctx: Ctx) -> None:
    """A dynamic VHD whose footer and footer copy both fail their checksum."""
    qemu_img("create", "-q", "-f", "vpc", "-o", "subformat=dynamic,force_size=on", str(path),
             "64M")
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        for at in (0, size - 512):
            fh.seek(at + 64)
            fh.write(b"\x00\x00\x00\x01")


def _bat_outside(path: Path, ctx: Ctx) -> None:
    """A dynamic VHD whose (checksummed) dynamic header puts the block table past the end."""
    qemu_img("create", "-q", "-f", "vpc", "-o", "subformat=dynamic,force_size=on", str(path),
             "64M")
    with open(path, "r+b") as fh:
        fh.seek(512)
        header = bytearray(fh.read(1024))
        struct.pack_into(">Q", header, 16, 1 << 40)
        _fix_checksum(header, 36)
        fh.seek(512)
        fh.write(header)


def qcow2_disk(opts: Callable[[Ctx], list[str]]) -> Callable[[Path, Ctx], None]:
    """The disk becomes a qcow2 image (and config.xml says so) created with ``opts``."""
    def damage(d: Path, ctx: Ctx) -> None:
        disk = d / DISK
        disk.unlink()
        new = d / VHD_DIR / "src-disk.qcow2"
        qemu_img("create", "-q", "-f", "qcow2", *opts(ctx), str(new), "64M")
        cfg = (d / CONFIG).read_text(encoding="utf-8")
        cfg = cfg.replace('format="vpc"', 'format="qcow2"').replace(DISK, f"{VHD_DIR}/"
                                                                      "src-disk.qcow2")
        (d / CONFIG).write_text(cfg, encoding="utf-8")
        rehash(d)
    return damage


def secret(ctx: Ctx) -> Path:
    path = ctx.outside / "secret.raw"
    if not path.exists():
        path.write_bytes(b"host secret\n" * 4096)
    return path


def special(kind: str) -> Callable[[Path, Ctx], None]:
    def damage(d: Path, ctx: Ctx) -> None:
        path = d / "Snapshots" / kind
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "device":
            os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        elif kind == "socket":
            with socket.socket(socket.AF_UNIX) as s:
                s.bind(str(path))
        elif kind == "symlink loop":
            os.symlink("loop-b", d / "Snapshots" / "loop-a")
            os.symlink("loop-a", d / "Snapshots" / "loop-b")
    return damage


def _disk_symlink(d: Path, ctx: Ctx) -> None:
    target = ctx.outside / "src-disk.vhd"
    shutil.copyfile(d / DISK, target)
    (d / DISK).unlink()
    os.symlink(target, d / DISK)


def _dir_symlink(d: Path, ctx: Ctx) -> None:
    target = ctx.outside / "vhds"
    shutil.copytree(d / VHD_DIR, target, dirs_exist_ok=True)
    shutil.rmtree(d / VHD_DIR)
    os.symlink(target, d / VHD_DIR)


def _hard_link(d: Path, ctx: Ctx) -> None:
    """The disk becomes a second name of a file outside the export (same content, so the
    checksum still matches): an in-place import would run a VM on that outside file."""
    outside = d.parent / f".{d.name}-victim.vhd"
    shutil.copyfile(d / DISK, outside)
    (d / DISK).unlink()
    os.link(outside, d / DISK)
    ctx.cleanups.append(lambda: outside.unlink(missing_ok=True))


def _mount_inside(d: Path, ctx: Ctx) -> None:
    mnt = d / "Snapshots" / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "--bind", str(ctx.outside), str(mnt)], capture_output=True,
                       timeout=30)
    if r.returncode != 0:
        raise PermissionError("mount --bind is not permitted here")
    ctx.cleanups.append(lambda: subprocess.run(["umount", "-l", str(mnt)], check=False,
                                               capture_output=True, timeout=30))


def _many_entries(d: Path, ctx: Ctx) -> None:
    for i in range(10_001):
        (d / "Snapshots" / f"f{i}").touch()


def _second_exp(d: Path, ctx: Ctx) -> None:
    shutil.copyfile(exp_of(d), d / VMS_DIR / f"{OTHER_GUID}.exp")
    rehash(d)


def _duplicate_instance(d: Path, ctx: Ctx) -> None:
    exp = exp_of(d)
    text = exp.read_text(encoding="utf-8")
    first = text[text.index("<VALUE.OBJECT>"):text.index("</VALUE.OBJECT>") + 15]
    exp.write_text(text.replace(first, first + "\n" + first, 1), encoding="utf-8")
    rehash(d)


def _other_vm_instances(d: Path, ctx: Ctx) -> None:
    exp = exp_of(d)
    guid = exp.stem
    exp.write_text(exp.read_text(encoding="utf-8").replace(f"Microsoft:{guid}",
                                                           f"Microsoft:{OTHER_GUID}"))
    rehash(d)


def _config_guid(d: Path, ctx: Ctx) -> None:
    cfg = d / CONFIG
    guid = exp_of(d).stem
    cfg.write_text(cfg.read_text(encoding="utf-8").replace(guid, OTHER_GUID))
    rehash(d)


def _duplicate_disk_entry(d: Path, ctx: Ctx) -> None:
    cfg = d / CONFIG
    text = cfg.read_text(encoding="utf-8")
    disk = text[text.index("<disk "):text.index("</disk>") + 7]
    cfg.write_text(text.replace(disk, disk + disk))
    rehash(d)


def _empty(d: Path, ctx: Ctx) -> None:
    for p in d.iterdir():
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def _config_dir(d: Path, ctx: Ctx) -> None:
    (d / CONFIG).unlink()
    (d / CONFIG).mkdir()
    rehash(d)


def _flip_disk_data(d: Path, ctx: Ctx) -> None:
    with open(d / DISK, "r+b") as fh:
        fh.seek(2 << 20)  # inside the data blocks of the dynamic VHD, not its headers
        fh.write(b"tampered")


def _exp_class(d: Path, ctx: Ctx) -> None:
    exp = exp_of(d)
    text = exp.read_text(encoding="utf-8")
    exp.write_text(text.replace("<DECLGROUP>", '<DECLGROUP><VALUE.OBJECT><CLASS NAME="Msvm_Evil">'
                                               "</CLASS></VALUE.OBJECT>", 1))
    rehash(d)


def _exp_foreign(d: Path, ctx: Ctx) -> None:
    exp = exp_of(d)
    text = exp.read_text(encoding="utf-8")
    evil = ('<VALUE.OBJECT><INSTANCE CLASSNAME="Msvm_ComputerSystem"><PROPERTY NAME="InstanceID" '
            f'TYPE="string"><VALUE>Microsoft:{exp.stem}\\evil</VALUE></PROPERTY></INSTANCE>'
            "</VALUE.OBJECT>")
    exp.write_text(text.replace("</DECLGROUP>", evil + "</DECLGROUP>", 1))
    rehash(d)


def _latin1_name(d: Path, ctx: Ctx) -> None:
    cfg = d / CONFIG
    cfg.write_bytes(cfg.read_bytes().replace(b"<name>", b"<name>\xe9"))
    rehash(d)


def _deep(tag: str, n: int) -> bytes:
    return (f"<{tag}>" * n + f"</{tag}>" * n).encode()


CASES: list[Case] = [
    # config.xml
    Case("config truncated", truncated(CONFIG), "config.xml is refused because it is not "
                                                "well-formed XML"),
    Case("config empty", put(CONFIG, b""), "config.xml is refused because it is not well-formed"),
    Case("config binary garbage", put(CONFIG, garbage(4096)), "config.xml is refused because"),
    Case("config not UTF-8", _latin1_name, "not well-formed"),
    Case("config billion laughs", put(CONFIG, LAUGHS), "document type declaration"),
    Case("config external entity", put(CONFIG, EXTERNAL), "document type declaration"),
    Case("config nested 5000 deep", put(CONFIG, _deep("vsms-export", 5000)),
         "nested more than 32 deep"),
    Case("config of 100 MB", huge(CONFIG, 100 << 20), "more than the limit of 1048576 bytes"),
    Case("config is a directory", _config_dir, "config.xml is missing or is not a regular file"),
    Case("config format version 2", edit(CONFIG, 'format="1"', 'format="2"'), "format version"),
    Case("config path with ..", edit(CONFIG, DISK, "../../vms/src-disk.vhd"), "contains '..'"),
    Case("config absolute path", edit(CONFIG, DISK, "/etc/passwd"), "is an absolute path"),
    Case("config duplicate device id", _duplicate_disk_entry, "more than once"),
    Case("config GUID differs from the .exp", _config_guid, "does not match the virtual machine "
                                                            "GUID"),
    # .exp
    Case(".exp truncated", truncated("EXP"), "not well-formed XML"),
    Case(".exp empty", put("EXP", b""), "not well-formed XML"),
    Case(".exp binary garbage", put("EXP", garbage(8192)), ".exp' is refused because"),
    Case(".exp billion laughs", put("EXP", LAUGHS), "document type declaration"),
    Case(".exp external entity", put("EXP", EXTERNAL), "document type declaration"),
    Case(".exp nested 5000 deep", put("EXP", _deep("CIM", 5000)), "nested more than 32 deep"),
    Case(".exp of 5 MB", huge("EXP", 5 << 20), "more than the limit of 4194304 bytes"),
    Case(".exp with 150000 elements", put("EXP", b"<CIM>" + b"<a/>" * 150_000 + b"</CIM>"),
         "more than 100000 elements"),
    Case(".exp not CIM-XML", put("EXP", b"<html><body/></html>"), "is not a CIM-XML document"),
    Case(".exp declares a class", _exp_class, "where a <VALUE.OBJECT> holding one <INSTANCE>"),
    Case(".exp foreign class", _exp_foreign, "not a settings class"),
    Case(".exp duplicate instance", _duplicate_instance, "more than once"),
    Case(".exp instances of another VM", _other_vm_instances, "does not belong to virtual "
                                                              "machine"),
    Case("two .exp files", _second_exp, "several .exp files"),
    # manifest
    Case("manifest missing", lambda d, c: (d / MANIFEST).unlink(), "manifest.sha256 is missing"),
    Case("manifest garbage", put(MANIFEST, garbage(2048), hashed=False), "manifest.sha256"),
    Case("manifest names ../config.xml", lambda d, c: (d / MANIFEST).write_text(
        (d / MANIFEST).read_text() + "0" * 64 + "  ../config.xml\n"), "contains '..'"),
    Case("file not in the manifest", lambda d, c: (d / "Snapshots" / "stray").write_bytes(b"x"),
         "is not listed in manifest.sha256"),
    Case("disk data tampered", _flip_disk_data, "does not match its checksum", quick=False),
    Case("disk missing", lambda d, c: (d / DISK).unlink(), "is missing"),
    # links and special files
    Case("disk is a symlink outside", _disk_symlink, "is a symbolic link"),
    Case("disk folder is a symlink outside", _dir_symlink, "is a symbolic link"),
    Case("symlink loop", special("symlink loop"), "is a symbolic link"),
    Case("disk is a hard link to a file outside", _hard_link, "hard links"),
    Case("FIFO inside", special("fifo"), "is a FIFO"),
    Case("socket inside", special("socket"), "is a socket"),
    Case("device file inside", special("device"), "is a device file"),
    Case("bind mount inside", _mount_inside, "is a mount point"),
    Case("10001 files", _many_entries, "more than 10000 files"),
    Case("empty directory", _empty, "config.xml is missing"),
    # wrong disk formats and hostile images
    Case("qcow2 named .vhd", replace_disk(_qcow2), "is a qcow2 image, not vpc"),
    Case("raw data named .vhd", replace_disk(_raw), "is a raw image, not vpc"),
    Case("fixed VHD whose footer lies", replace_disk(_lying_fixed_vhd), "footer says the fixed "
                                                                        "disk holds",
         quick=False),
    Case("VHD with damaged footers", replace_disk(_damaged_footers), "not an intact vpc image",
         quick=False),
    Case("VHD block table past the end", replace_disk(_bat_outside), "not an intact vpc image",
         quick=False),
    Case("qcow2 with a backing file outside", qcow2_disk(lambda c: [
        "-u", "-b", str(secret(c)), "-F", "raw"]), "names the backing file"),
    Case("qcow2 with a json: backing file", qcow2_disk(lambda c: [
        "-u", "-b", f'json:{{"file":{{"driver":"file","filename":"{secret(c)}"}}}}', "-F",
        "raw"]), "names the backing file"),
    Case("qcow2 with an external data file", qcow2_disk(lambda c: [
        "-o", f"data_file={c.outside / 'data.raw'}"]), "needs the external data file"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description="write the malformed-export corpus")
    ap.add_argument("export", type=Path, help="a valid per-VM export directory made by vsms")
    ap.add_argument("out", type=Path, help="where to write one directory per case")
    args = ap.parse_args()
    ctx = Ctx(args.out / "_outside")
    ctx.outside.mkdir(parents=True, exist_ok=True)
    for case in CASES:
        d = args.out / case.name.replace(" ", "-").replace("/", "_")
        shutil.copytree(args.export, d, symlinks=True)
        case.damage(d, ctx)
        print(f"{d}: expect '{case.says}'")
    for undo in ctx.cleanups:  # e.g. the bind mount: nothing stays mounted
        undo()


if __name__ == "__main__":
    main()
