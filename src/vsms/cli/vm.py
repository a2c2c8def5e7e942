"""``vsms vm list|show|create|start|stop|pause|save|destroy``.

``create`` follows the Hyper-V call sequence: DefineVirtualSystem with an embedded
Msvm_VirtualSystemGlobalSettingData, ModifyVirtualSystemResources for memory and processors,
then AddVirtualSystemResources for each disk (a drive on an IDE controller, then the image in
the drive) and network adapter. If any step fails the half-made VM is destroyed again.
State changes are Msvm_ComputerSystem.RequestStateChange jobs; destroy is a
DestroyVirtualSystem job (the disk images are kept).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import pywbem

from vsms.cim import names
from vsms.cim.enums import RequestedState, ResourceType
from vsms.cli import adopt
from vsms.cli.output import Output
from vsms.cli.session import CliError, Session, job_summary, vm_summary
from vsms.errors import InvalidParameter
from vsms.mapping.switch_paths import is_port_text, port_keys, switch_path
from vsms.mapping.system import ACCELERATOR_INFO

SUB_DISK_DRIVE = "Microsoft Synthetic Disk Drive"
SUB_VHD = "Microsoft Virtual Hard Disk"
SUB_NIC = "Microsoft Synthetic Ethernet Port"
_IDE_SLOTS = [(0, 0), (0, 1), (1, 0), (1, 1)]

_ACCEL_TEXT = {"KVM": "KVM (hardware virtualization)", "TCG": "TCG (QEMU emulation, slow)"}

_STATE_ACTIONS: dict[str, tuple[RequestedState, str, str]] = {
    "start": (RequestedState.ENABLED, "Starting", "start (or resume) a virtual machine"),
    "stop": (RequestedState.DISABLED, "Turning off", "turn a virtual machine off"),
    "pause": (RequestedState.PAUSED, "Pausing", "pause a running virtual machine"),
    "save": (RequestedState.SUSPENDED, "Saving", "save a virtual machine's state and stop it"),
}


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
               parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("vm", help="virtual machines: list, show, create, start, stop, ...")
    acts = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = acts.add_parser("list", parents=parents, help="list the virtual machines")
    a.set_defaults(run=cmd_list)
    a = acts.add_parser("show", parents=parents, help="show one virtual machine")
    a.add_argument("name", help="name (ElementName) or ID of the virtual machine")
    a.set_defaults(run=cmd_show)
    a = acts.add_parser("create", parents=parents, help="define a new virtual machine")
    a.add_argument("name", help="name (ElementName) of the new virtual machine")
    a.add_argument("--memory", type=positive, metavar="MB", help="memory in MB (default 512)")
    a.add_argument("--cpus", type=positive, metavar="N", help="virtual processors (default 1)")
    a.add_argument("--disk", action="append", default=[], metavar="PATH",
                   help="attach this existing .vhd/.vhdx (repeatable, up to 4: IDE 0:0, 0:1, "
                        "1:0, 1:1)")
    a.add_argument("--nic", action="append", nargs="?", const="", metavar="SWITCH",
                   help="add a network adapter, connected to SWITCH (a libvirt network) if "
                        "given (repeatable)")
    a.set_defaults(run=cmd_create)
    for action, (_, _, text) in _STATE_ACTIONS.items():
        a = acts.add_parser(action, parents=parents, help=text)
        a.add_argument("name", help="name (ElementName) or ID of the virtual machine")
        a.set_defaults(run=cmd_state, state_action=action)
    a = acts.add_parser("destroy", parents=parents,
                        help="delete a virtual machine's definition (its disks are kept)")
    a.add_argument("name", help="name (ElementName) or ID of the virtual machine")
    a.set_defaults(run=cmd_destroy)
    adopt.add_action(acts)  # local, on the host (like `vsms user`)


# ---------------------------------------------------------------------- list / show
def cmd_list(args: argparse.Namespace, s: Session, out: Output) -> int:
    vms = sorted((vm_summary(vm) for vm in s.vms()), key=lambda v: (str(v["name"]), v["id"]))
    rows = [[str(v["name"]), v["state"], str(v["id"])] for v in vms]
    text = out.table(rows, ["NAME", "STATE", "ID"]) if rows else ["no virtual machines"]
    out.result(text, vms)
    return 0


def _instance_id(ref: Any) -> str | None:
    if not isinstance(ref, str) or not ref:
        return None
    try:
        key = pywbem.CIMInstanceName.from_wbem_uri(ref).keybindings.get("InstanceID")
    except (ValueError, TypeError):
        return None
    return str(key) if key is not None else None


def accelerator(vm: pywbem.CIMInstance) -> str | None:
    """How the VM's processors run ("KVM" or "TCG"), from its OtherIdentifyingInfo."""
    for what, value in zip(vm.get("IdentifyingDescriptions") or [],
                           vm.get("OtherIdentifyingInfo") or [], strict=False):
        if what == ACCELERATOR_INFO:
            return str(value)
    return None


def describe(vm: pywbem.CIMInstance, vssd: pywbem.CIMInstance,
             parts: list[pywbem.CIMInstance]) -> dict[str, Any]:
    """A VM with its memory, processors, disks, DVD drives and network adapters."""
    by_id = {str(p.get("InstanceID")): p for p in parts}
    facts = vm_summary(vm)
    facts.update({"notes": vssd.get("Notes"), "created": vm.get("InstallDate"),
                  "accelerator": accelerator(vm),
                  "memory_mb": None, "processors": None, "disks": [], "dvds": [],
                  "network_adapters": []})
    for part in parts:
        rtype = part.get("ResourceType")
        if part.classname == names.MEMORY_SD:
            facts["memory_mb"] = part.get("VirtualQuantity")
        elif part.classname == names.PROCESSOR_SD:
            facts["processors"] = part.get("VirtualQuantity")
        elif rtype in (ResourceType.ETHERNET_ADAPTER, ResourceType.OTHER_NETWORK_ADAPTER):
            conn = part.get("Connection") or []
            facts["network_adapters"].append({
                "name": part.get("ElementName"), "type": part.get("ResourceSubType"),
                "switch": conn[0] if conn else "", "mac": part.get("Address")})
        elif rtype in (ResourceType.STORAGE_EXTENT, ResourceType.DVD_DRIVE,
                       ResourceType.CD_DRIVE) and part.get("Connection"):
            drive = by_id.get(_instance_id(part.get("Parent")) or "")
            ctrl = by_id.get(_instance_id(drive.get("Parent")) or "") if drive else None
            where = "?"
            if drive is not None and ctrl is not None:
                bus = "IDE" if ctrl.get("ResourceType") == ResourceType.IDE_CONTROLLER else "SCSI"
                where = f"{bus} {ctrl.get('Address')}:{drive.get('Address')}"
            kind = "dvds" if drive is not None and drive.get("ResourceType") in (
                ResourceType.DVD_DRIVE, ResourceType.CD_DRIVE) else "disks"
            facts[kind].append({"location": where, "path": part.get("Connection")[0]})
    return facts


def switch_names(s: Session, adapters: list[dict[str, Any]]) -> None:
    """An adapter on a switch port shows the switch's ElementName (its ``switch``) and the
    port's path (``port``); a bare network name stays as it is."""
    for n in adapters:
        text = str(n["switch"] or "")
        n["port"] = ""
        if not is_port_text(text):
            continue
        n["port"] = text
        try:
            switch_id, _ = port_keys(text)
            n["switch"] = str(s.conn.GetInstance(switch_path(switch_id))["ElementName"])
        except (InvalidParameter, pywbem.Error):
            n["switch"] = f"{text} (switch not found)"


def cmd_show(args: argparse.Namespace, s: Session, out: Output) -> int:
    vm = s.vm(args.name)
    vssd, parts = s.settings(vm)
    f = describe(vm, vssd, parts)
    switch_names(s, f["network_adapters"])
    lines = [f"Name:        {f['name']}", f"ID:          {f['id']}", f"State:       {f['state']}",
             f"Memory:      {f['memory_mb']} MB", f"Processors:  {f['processors']}",
             f"Accelerator: {_ACCEL_TEXT.get(f['accelerator'], f['accelerator'] or '?')}"]
    if f["notes"]:
        lines.append(f"Notes:       {f['notes']}")
    lines += [f"Disk:        {d['location']}  {d['path']}" for d in f["disks"]]
    lines += [f"DVD:         {d['location']}  {d['path']}" for d in f["dvds"]]
    lines += [f"Network:     {n['name']}  switch {n['switch'] or '(not connected)'}  "
              f"MAC {n['mac'] or '(dynamic)'}" for n in f["network_adapters"]]
    out.result(lines, f)
    return 0


# ---------------------------------------------------------------------- create
def _embedded(classname: str, props: dict[str, Any]) -> str:
    inst = pywbem.CIMInstance(classname, properties={k: v for k, v in props.items()
                                                     if v is not None})
    text: str = inst.tocimxmlstr()
    return text


def _modify(s: Session, vm: pywbem.CIMInstanceName, part: pywbem.CIMInstance) -> None:
    part = part.copy()
    part.path = None
    s.call(s.service(), "ModifyVirtualSystemResources",
           [("ComputerSystem", vm), ("ResourceSettingData", [part.tocimxmlstr()])])


def _add(s: Session, vm: pywbem.CIMInstanceName, classname: str,
         props: dict[str, Any]) -> pywbem.CIMInstanceName:
    rasd = _embedded(classname, props)
    out, _ = s.call(s.service(), "AddVirtualSystemResources",
                    [("TargetSystem", vm), ("ResourceSettingData", [rasd])])
    new = out.get("NewResources") or []
    if len(new) != 1:
        raise CliError(f"AddVirtualSystemResources returned {len(new)} new resources instead "
                       "of one")
    path: pywbem.CIMInstanceName = new[0]
    return path


def _configure(s: Session, vm: pywbem.CIMInstance, args: argparse.Namespace) -> None:
    _, parts = s.settings(vm)
    for classname, value, props in ((names.MEMORY_SD, args.memory,
                                     ("VirtualQuantity", "Reservation", "Limit")),
                                    (names.PROCESSOR_SD, args.cpus, ("VirtualQuantity",))):
        if value is None:
            continue
        part = next((p for p in parts if p.classname == classname), None)
        if part is None:
            raise CliError(f"the new virtual machine has no {classname}")
        for prop in props:
            part[prop] = pywbem.Uint64(value)
        _modify(s, vm.path, part)
    ide = {str(p.get("Address")): p for p in parts
           if p.get("ResourceType") == ResourceType.IDE_CONTROLLER}
    for (ctrl, slot), path in zip(_IDE_SLOTS, args.disk, strict=False):
        controller = ide.get(str(ctrl))
        if controller is None:
            raise CliError(f"the new virtual machine has no IDE controller {ctrl}")
        drive = _add(s, vm.path, names.RASD, {
            "ResourceType": pywbem.Uint16(ResourceType.DISK), "ResourceSubType": SUB_DISK_DRIVE,
            "Parent": controller.path.to_wbem_uri(), "Address": str(slot)})
        _add(s, vm.path, names.RASD, {
            "ResourceType": pywbem.Uint16(ResourceType.STORAGE_EXTENT),
            "ResourceSubType": SUB_VHD, "Parent": drive.to_wbem_uri(), "Connection": [path]})
    for switch in args.nic or []:
        _add(s, vm.path, names.SYNTHETIC_NIC_SD, {
            "ResourceType": pywbem.Uint16(ResourceType.ETHERNET_ADAPTER),
            "ResourceSubType": SUB_NIC, "ElementName": "Network Adapter",
            "Connection": [switch] if switch else None})


def cmd_create(args: argparse.Namespace, s: Session, out: Output) -> int:
    if len(args.disk) > len(_IDE_SLOTS):
        raise CliError(f"{len(args.disk)} disks given: a virtual machine has {len(_IDE_SLOTS)} "
                       "IDE slots; attach at most 4 disks")
    args.disk = [os.path.abspath(p) for p in args.disk]
    service = s.service()
    gsd = _embedded(names.VSGSD, {"ElementName": args.name})
    result, job = s.call(service, "DefineVirtualSystem", [("SystemSettingData", gsd)],
                         label=f"Defining '{args.name}'")
    path = result.get("DefinedSystem")
    if path is None and job is not None:
        affected = s.affected_vm(job)
        path = affected.path if affected is not None else None
    if path is None:
        raise CliError("DefineVirtualSystem returned no DefinedSystem")
    vm = s.conn.GetInstance(path)
    try:
        _configure(s, vm, args)
    except BaseException as err:
        try:
            s.call(service, "DestroyVirtualSystem", [("ComputerSystem", vm.path)],
                   label=f"Removing the half-made '{args.name}'")
            undone = "the half-made virtual machine was removed again"
        except Exception as again:
            undone = f"removing the half-made virtual machine {vm['Name']} failed too: {again}"
        if isinstance(err, CliError):
            raise CliError(f"{err.message}; {undone}", data=err.data) from err
        raise
    vm = s.conn.GetInstance(vm.path)
    vssd, parts = s.settings(vm)
    facts = describe(vm, vssd, parts)
    out.result(f"Created virtual machine '{facts['name']}' ({facts['id']}): "
               f"{facts['memory_mb']} MB, {facts['processors']} processor(s), "
               f"{len(facts['disks'])} disk(s), {len(facts['network_adapters'])} network "
               "adapter(s).", {"ok": True, "vm": facts})
    return 0


# ---------------------------------------------------------------------- life cycle
def cmd_state(args: argparse.Namespace, s: Session, out: Output) -> int:
    requested, verb, _ = _STATE_ACTIONS[args.state_action]
    vm = s.vm(args.name)
    _, job = s.call(vm.path, "RequestStateChange",
                    [("RequestedState", pywbem.Uint16(requested))],
                    label=f"{verb} '{vm['ElementName']}'")
    now = vm_summary(s.conn.GetInstance(vm.path))
    out.result(f"Virtual machine '{now['name']}' is now {now['state']}.",
               {"ok": True, "vm": now, "job": job_summary(job) if job is not None else None})
    return 0


def cmd_destroy(args: argparse.Namespace, s: Session, out: Output) -> int:
    vm = s.vm(args.name)
    _, job = s.call(s.service(), "DestroyVirtualSystem", [("ComputerSystem", vm.path)],
                    label=f"Destroying '{vm['ElementName']}'")
    gone = vm_summary(vm)
    out.result(f"Destroyed virtual machine '{gone['name']}' ({gone['id']}); its disk images "
               "were kept.",
               {"ok": True, "vm": gone, "job": job_summary(job) if job is not None else None})
    return 0
