"""``vsms snapshot create|list|apply|remove [--tree] VM [SNAPSHOT]``.

Snapshots are found as a WBEM client finds them: the VM's Msvm_ElementSettingData associators
of class Msvm_VirtualSystemSettingData (SettingType 5). A SNAPSHOT argument is a snapshot's ID
(its GUID, the tail of ``Microsoft:<GUID>``) or its name (ElementName). ``create`` calls
CreateVirtualSystemSnapshot, ``apply`` ApplyVirtualSystemSnapshotEx, ``remove``
RemoveVirtualSystemSnapshot (RemoveVirtualSystemSnapshotTree with ``--tree``), each followed
to the end of its job with a progress bar.
"""

from __future__ import annotations

import argparse
from typing import Any

import pywbem

from vsms.cim import names
from vsms.cli.output import Output
from vsms.cli.session import CliError, Session, job_summary

SNAPSHOT_SETTING_TYPE = 5
_PREFIX = "Microsoft:"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
               parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("snapshot", help="snapshots of a virtual machine: create, list, apply, "
                                        "remove")
    acts = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = acts.add_parser("create", parents=parents, help="take a snapshot of a virtual machine")
    a.add_argument("vm", help="name (ElementName) or ID of the virtual machine")
    a.set_defaults(run=cmd_create)
    a = acts.add_parser("list", parents=parents, help="list a virtual machine's snapshots")
    a.add_argument("vm", help="name (ElementName) or ID of the virtual machine")
    a.set_defaults(run=cmd_list)
    a = acts.add_parser("apply", parents=parents,
                        help="return a virtual machine to a snapshot (its current state is "
                             "discarded)")
    a.add_argument("vm", help="name (ElementName) or ID of the virtual machine")
    a.add_argument("snapshot", help="name (ElementName) or ID of the snapshot")
    a.set_defaults(run=cmd_apply)
    a = acts.add_parser("remove", parents=parents,
                        help="remove a snapshot (its disk changes are merged)")
    a.add_argument("vm", help="name (ElementName) or ID of the virtual machine")
    a.add_argument("snapshot", help="name (ElementName) or ID of the snapshot")
    a.add_argument("--tree", action="store_true",
                   help="remove the snapshot and every snapshot below it")
    a.set_defaults(run=cmd_remove)


def snapshot_id(vssd: pywbem.CIMInstance) -> str:
    return str(vssd["InstanceID"])[len(_PREFIX):]


def summary(vssd: pywbem.CIMInstance) -> dict[str, Any]:
    parent = vssd.get("Parent")
    parent_id = None
    if parent:
        try:
            key = pywbem.CIMInstanceName.from_wbem_uri(str(parent)).keybindings["InstanceID"]
            parent_id = str(key)[len(_PREFIX):]
        except (ValueError, KeyError):
            parent_id = str(parent)
    return {"id": snapshot_id(vssd), "name": vssd.get("ElementName"),
            "created": str(vssd["CreationTime"]) if vssd.get("CreationTime") else None,
            "parent": parent_id}


def snapshots(s: Session, vm: pywbem.CIMInstance) -> list[pywbem.CIMInstance]:
    found = s.associators(vm.path, names.ELEMENT_SETTING_DATA, names.VSSD)
    snaps = [v for v in found if v.get("SettingType") == SNAPSHOT_SETTING_TYPE]
    return sorted(snaps, key=lambda v: str(v.get("CreationTime") or ""))


def find(s: Session, vm: pywbem.CIMInstance, ident: str) -> pywbem.CIMInstance:
    snaps = snapshots(s, vm)
    wanted = ident.strip("{}").lower()
    for snap in snaps:
        if snapshot_id(snap).lower() == wanted:
            return snap
    named = [v for v in snaps if v.get("ElementName") == ident]
    if len(named) == 1:
        return named[0]
    if named:
        raise CliError(f"{len(named)} snapshots of '{vm['ElementName']}' are named {ident!r}: "
                       "give the ID instead (see `vsms snapshot list`)",
                       data={"snapshot": ident})
    raise CliError(f"'{vm['ElementName']}' has no snapshot {ident!r}: see `vsms snapshot list "
                   f"{vm['ElementName']}`", data={"snapshot": ident})


def _tree_lines(snaps: list[dict[str, Any]], previous: str | None) -> list[str]:
    children: dict[str | None, list[dict[str, Any]]] = {}
    ids = {s["id"] for s in snaps}
    for snap in snaps:
        children.setdefault(snap["parent"] if snap["parent"] in ids else None, []).append(snap)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for snap in children.get(parent, []):
            mark = "  <- now" if snap["id"] == previous else ""
            lines.append(f"{'  ' * depth}{snap['name']}  ({snap['id']}){mark}")
            walk(snap["id"], depth + 1)
    walk(None, 0)
    return lines


def cmd_list(args: argparse.Namespace, s: Session, out: Output) -> int:
    vm = s.vm(args.vm)
    snaps = [summary(v) for v in snapshots(s, vm)]
    prev = s.associators(vm.path, "Msvm_PreviousSettingData", names.VSSD)
    previous = snapshot_id(prev[0]) if prev else None
    text = _tree_lines(snaps, previous) or [f"'{vm['ElementName']}' has no snapshots"]
    out.result(text, {"vm": vm["Name"], "snapshots": snaps, "previous": previous})
    return 0


def cmd_create(args: argparse.Namespace, s: Session, out: Output) -> int:
    vm = s.vm(args.vm)
    result, job = s.call(s.service(), "CreateVirtualSystemSnapshot",
                         [("SourceSystem", vm.path)],
                         label=f"Snapshotting '{vm['ElementName']}'")
    path = result.get("SnapshotSettingData")
    if path is None:
        raise CliError("CreateVirtualSystemSnapshot returned no SnapshotSettingData")
    snap = summary(s.conn.GetInstance(path))
    out.result(f"Created snapshot '{snap['name']}' ({snap['id']}).",
               {"ok": True, "snapshot": snap,
                "job": job_summary(job) if job is not None else None})
    return 0


def cmd_apply(args: argparse.Namespace, s: Session, out: Output) -> int:
    vm = s.vm(args.vm)
    snap = find(s, vm, args.snapshot)
    _, job = s.call(s.service(), "ApplyVirtualSystemSnapshotEx",
                    [("ComputerSystem", vm.path), ("SnapshotSettingData", snap.path)],
                    label=f"Applying '{snap['ElementName']}'")
    out.result(f"Applied snapshot '{snap['ElementName']}' to '{vm['ElementName']}'.",
               {"ok": True, "snapshot": summary(snap),
                "job": job_summary(job) if job is not None else None})
    return 0


def cmd_remove(args: argparse.Namespace, s: Session, out: Output) -> int:
    vm = s.vm(args.vm)
    snap = find(s, vm, args.snapshot)
    method = "RemoveVirtualSystemSnapshotTree" if args.tree else "RemoveVirtualSystemSnapshot"
    _, job = s.call(s.service(), method, [("SnapshotSettingData", snap.path)],
                    label=f"Removing '{snap['ElementName']}'")
    what = "the snapshot tree from" if args.tree else "snapshot"
    out.result(f"Removed {what} '{snap['ElementName']}'.",
               {"ok": True, "snapshot": summary(snap), "tree": bool(args.tree),
                "job": job_summary(job) if job is not None else None})
    return 0
