"""``vsms export``, ``vsms import`` and ``vsms import-settings``.

Export: the VM's Msvm_VirtualSystemExportSettingData is fetched through its association
(Msvm_SystemExportSettingData), adjusted and passed to ExportVirtualSystemEx. Import in place
with only ``--new-id`` is ImportVirtualSystem (the 2008 call); ``--copy``/``--name`` use
GetVirtualSystemImportSettingData + ImportVirtualSystemEx. ``import-settings`` shows what an
import would do and every problem found, and changes nothing. A missing export directory or copy
target is created by the command (``make_dir``), as Export-VM and Import-VM -Copy do; the
service methods themselves want it to exist.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import socket
from typing import Any
from urllib.parse import urlsplit

import pywbem

from vsms.cim import names
from vsms.cim.embedded import parse_instance
from vsms.cli.disk import get_info
from vsms.cli.output import Output
from vsms.cli.session import CliError, Session, job_summary, vm_summary
from vsms.errors import VsmsError
from vsms.operations.paths import StorageRoots
from vsms.settings import load_settings

_TARGET_ROOTS = ("TargetVmDataRoot", "TargetSnapshotDataRoot", "TargetVhdDataRoot")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
               parents: list[argparse.ArgumentParser]) -> None:
    a = sub.add_parser("export", parents=parents, help="export a virtual machine to a directory")
    a.add_argument("vm", help="name (ElementName) or ID of the virtual machine (turned off)")
    a.add_argument("dir", help="directory under a storage root (created when missing and the "
                               "service runs on this host)")
    a.add_argument("--config-only", action="store_true",
                   help="export the configuration only, not the virtual hard disks")
    a.add_argument("--no-subdirectory", action="store_true",
                   help="write into DIR itself instead of DIR/<vm name>")
    a.set_defaults(run=cmd_export)
    a = sub.add_parser("import", parents=parents, help="import an exported virtual machine")
    a.add_argument("dir", help="the per-VM directory the export created")
    a.add_argument("--new-id", action="store_true",
                   help="give the virtual machine a new ID (required while the original exists)")
    a.add_argument("--copy", action="store_true",
                   help="copy the disks and run from the copies (the export stays reusable)")
    a.add_argument("--to", metavar="DIR", help="with --copy: where the copies go (created when "
                                               "missing and the service runs on this host)")
    a.add_argument("--name", help="name of the imported virtual machine")
    a.set_defaults(run=cmd_import)
    a = sub.add_parser("import-settings", parents=parents,
                       help="show what importing DIR would do and every problem, changing nothing")
    a.add_argument("dir", help="the per-VM directory the export created")
    a.set_defaults(run=cmd_import_settings)


def is_local(url: str) -> bool:
    """True when the service runs on this machine (so paths can be checked here too)."""
    host = (urlsplit(url).hostname or "").lower()
    return host in ("127.0.0.1", "localhost", "::1", socket.gethostname().lower())


def _require_dir(s: Session, path: str, what: str) -> None:
    if is_local(s.url) and not os.path.isdir(path):
        state = "is not a directory" if os.path.exists(path) else "does not exist"
        raise CliError(f"the {what} {path} {state}"
                       + (": create it first (mkdir -p)" if state == "does not exist" else ""),
                       data={"path": path})


def make_dir(s: Session, path: str, what: str, out: Output) -> list[str]:
    """Create the missing directory ``path`` (and missing parents) as Export-VM and
    Import-VM -Copy do, and say so; the directories made, outermost first.

    The service methods want an existing directory, as the reference's samples create it
    before the call. The CLI can create it only on the service's host (a local ``--url``) and
    only under a storage root of this host's settings (``VSMS_STORAGE_ROOTS`` or ``--config``
    of the service; default /var/lib/vsms/storage), resolved as the service resolves paths.
    Anywhere else the call goes ahead and the service reports the directory.
    """
    if os.path.isdir(path) or not is_local(s.url):
        return []
    if os.path.lexists(path):
        _require_dir(s, path, what)
    known = "the storage roots of this host's settings"
    try:
        roots = StorageRoots(load_settings(None, os.environ).storage_roots)
        known = ", ".join(str(r) for r in roots.roots)
        roots.confine(path, f"the {what}")
    except VsmsError:
        raise CliError(f"the {what} {path} does not exist, and vsms creates only directories "
                       f"under a storage root ({known}; set VSMS_STORAGE_ROOTS to the service's "
                       "roots): create it yourself, or use a directory under a storage root",
                       data={"path": path}) from None
    missing: list[str] = []
    at = path
    while not os.path.lexists(at):
        missing.insert(0, at)
        at = os.path.dirname(at)
    try:
        for d in missing:
            os.mkdir(d, 0o755)
    except OSError as err:
        remove_dirs(missing)
        raise CliError(f"cannot create the {what} {path}: {err.strerror}",
                       data={"path": path}) from None
    out.note(f"vsms: created the {what} {path}")
    return missing


def remove_dirs(made: list[str]) -> None:
    """Remove what ``make_dir`` created (innermost first), where still empty."""
    for d in reversed(made):
        with contextlib.suppress(OSError):
            os.rmdir(d)


def _subdir_name(name: str, guid: str) -> str:
    cleaned = "".join("_" if c in "/\\" or ord(c) < 32 else c for c in name).strip()
    return guid if cleaned in ("", ".", "..") else cleaned


# ---------------------------------------------------------------------- export
def cmd_export(args: argparse.Namespace, s: Session, out: Output) -> int:
    vm = s.vm(args.vm)
    directory = os.path.abspath(args.dir)
    found = s.associators(vm.path, names.SYSTEM_EXPORT_SD, names.EXPORT_SD)
    if not found:
        raise CliError(f"the virtual machine {vm['ElementName']!r} has no {names.EXPORT_SD}")
    dest = directory if args.no_subdirectory else os.path.join(
        directory, _subdir_name(str(vm["ElementName"]), str(vm["Name"])))
    if is_local(s.url) and not args.no_subdirectory and os.path.isdir(dest) \
            and os.listdir(dest):
        raise CliError(f"the export target {dest} already exists and is not empty; an export "
                       "never overwrites: remove it or export into another directory",
                       data={"path": dest})
    esd = found[0].copy()
    esd.path = None
    esd["CopyVmStorage"] = not args.config_only
    esd["CopyVmRuntimeInformation"] = True
    esd["CreateVmExportSubdirectory"] = not args.no_subdirectory
    esd["CopySnapshotConfiguration"] = pywbem.Uint8(0)
    made = make_dir(s, directory, "export directory", out)
    try:
        _, job = s.call(s.service(), "ExportVirtualSystemEx",
                        [("ComputerSystem", vm.path), ("ExportDirectory", directory),
                         ("ExportSettingData", esd.tocimxmlstr())],
                        label=f"Exporting '{vm['ElementName']}'")
    except BaseException:
        remove_dirs(made)
        raise
    what = "configuration" if args.config_only else "configuration and disks"
    out.result(f"Exported virtual machine '{vm['ElementName']}' ({what}) to {dest}.",
               {"ok": True, "vm": vm_summary(vm), "directory": dest, "created": made,
                "with_storage": not args.config_only,
                "job": job_summary(job) if job is not None else None})
    return 0


# ---------------------------------------------------------------------- import
def import_settings(s: Session, directory: str) -> pywbem.CIMInstance:
    """GetVirtualSystemImportSettingData(directory) as an instance to edit."""
    result, _ = s.call(s.service(), "GetVirtualSystemImportSettingData",
                       [("ImportDirectory", directory)], label="Reading the export")
    raw = result.get("ImportSettingData")
    if isinstance(raw, pywbem.CIMInstance):
        return raw
    if isinstance(raw, str):
        return parse_instance(raw)
    raise CliError("GetVirtualSystemImportSettingData returned no ImportSettingData")


def cmd_import(args: argparse.Namespace, s: Session, out: Output) -> int:
    if args.to and not args.copy:
        raise CliError("--to only makes sense with --copy", status=2)
    directory = os.path.abspath(args.dir)
    _require_dir(s, directory, "import directory")
    service = s.service()
    label = f"Importing {os.path.basename(directory) or directory}"
    made: list[str] = []
    if not args.copy and not args.name:
        _, job = s.call(service, "ImportVirtualSystem",
                        [("ImportDirectory", directory), ("GenerateNewID", bool(args.new_id))],
                        label=label)
    else:
        isd = import_settings(s, directory)
        isd.path = None
        isd["GenerateNewId"] = bool(args.new_id)
        isd["CreateCopy"] = bool(args.copy)
        if args.name:
            isd["Name"] = args.name
        if args.to:
            target = os.path.abspath(args.to)
            for prop in _TARGET_ROOTS:
                isd[prop] = target
            made = make_dir(s, target, "copy target directory", out)
        try:
            _, job = s.call(service, "ImportVirtualSystemEx",
                            [("ImportDirectory", directory),
                             ("ImportSettingData", isd.tocimxmlstr())], label=label)
        except BaseException:
            remove_dirs(made)
            raise
    vm = s.affected_vm(job) if job is not None else None
    facts = vm_summary(vm) if vm is not None else None
    how = "as a copy" if args.copy else "in place"
    who = f"'{facts['name']}' ({facts['id']})" if facts else "a virtual machine"
    out.result(f"Imported virtual machine {who} from {directory} {how}.",
               {"ok": True, "vm": facts, "directory": directory, "copy": bool(args.copy),
                "created": made,
                "job": job_summary(job) if job is not None else None})
    return 0


# ---------------------------------------------------------------------- import-settings
def split_problems(text: str) -> list[str]:
    """'summary: 2 problem(s): (1) a; (2) b' -> ['a', 'b'] (or [text])."""
    parts = re.split(r";?\s*\(\d+\)\s+", text)
    return [p.strip() for p in parts[1:] if p.strip()] or [text]


def _preview(s: Session, directory: str) -> tuple[dict[str, Any], list[str], list[str]]:
    """(what the import would do, problems that make it fail, warnings)."""
    try:
        isd = import_settings(s, directory)
    except CliError as err:
        desc = err.data.get("error_description")
        return {}, split_problems(str(desc)) if desc else [err.message], []
    current = list(isd.get("CurrentResourcePaths") or [])
    source = list(isd.get("SourceResourcePaths") or [])
    disks, problems, warnings = [], [], []
    for i in range(max(len(current), len(source))):
        src = source[i] if i < len(source) else ""
        disk: dict[str, Any] = {"current": current[i] if i < len(current) else "",
                                "source": src}
        try:
            info = get_info(s, src)
            disk["in_use"] = bool(info["in_use"])
            if info["in_use"]:
                warnings.append(f"disk {i + 1}: {src} is in use by another virtual machine: "
                                "an import in place would fail; import with --copy")
        except CliError as err:
            problems.append(f"disk {i + 1}: {src} cannot be used: {err.message}")
        disks.append(disk)
    name = str(isd.get("Name") or "")
    same = [vm_summary(v)["id"] for v in s.vms() if v.get("ElementName") == name]
    if same:
        warnings.append(f"a virtual machine named '{name}' exists already ({', '.join(same)}): "
                        "import with --name to tell them apart")
    return {"name": name, "disks": disks,
            "networks": list(isd.get("SourceNetworkConnections") or [])}, problems, warnings


def cmd_import_settings(args: argparse.Namespace, s: Session, out: Output) -> int:
    directory = os.path.abspath(args.dir)
    plan, problems, warnings = _preview(s, directory)
    lines = [f"Importing {directory} would:"]
    if plan:
        lines.append(f"  define the virtual machine '{plan['name']}'")
        for i, d in enumerate(plan["disks"], 1):
            lines.append(f"  disk {i}: {d['current'] or '?'} -> from {d['source'] or '?'}")
        for i, n in enumerate(plan["networks"], 1):
            lines.append(f"  network adapter {i}: switch {n or '(not connected)'}")
    lines += [f"Warning: {w}" for w in warnings]
    lines.append("Problems: none found." if not problems else f"Problems ({len(problems)}):")
    lines += [f"  - {p}" for p in problems]
    out.result(lines, {"ok": not problems, "directory": directory, **plan,
                       "problems": problems, "warnings": warnings})
    if problems:
        out.note(f"vsms: {len(problems)} problem(s) found: an import of {directory} would fail")
        return 1
    return 0
