"""What vsms serves of the Hyper-V v1 reference: the data behind docs/coverage.md.

Every class page (``<Class> class``) and method page (``<Method> method of the <Class> class``) of
the reference is one row. A class is *served* when a provider gives its instances (for a CIM_
base class: when a provider serves it or one of its subclasses, since enumerating the base returns
them), *declared* when the class is in our schema but nothing produces instances, and *not served*
otherwise. A method is *served* when a provider of its class (or of a subclass that inherits the
method) implements it; a method vsms declares but does not implement answers 32770.

``python -m vsms.coverage PAGES > docs/coverage.md`` writes the table; tests/cim/test_coverage.py
reads the table back and checks it against the pages and a running service.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from vsms.cim import names
from vsms.providers.registry import Registry

SERVED, DECLARED, NOT_SERVED = "served", "declared", "not served"

_CLASS_TITLE = re.compile(r"^title:\s*(\w+?)\\?_(\w+) class\s*$", re.M)
_METHOD_TITLE = re.compile(r"^title:\s*(\w+) method of the (\w+?)\\?_(\w+) class\s*$", re.M)

# Why what is not served is not: the first matching (case-insensitive substring of the class
# name) wins. Keep these true: a reason names the issue that will serve it, or why it will not be.
REASONS: tuple[tuple[str, str], ...] = (
    (".EnableDevice", "device methods are not served: a VM's devices follow the VM's state"),
    (".OnlineDevice", "device methods are not served: a VM's devices follow the VM's state"),
    (".QuiesceDevice", "device methods are not served: a VM's devices follow the VM's state"),
    (".Reset", "device methods are not served: a VM's devices follow the VM's state"),
    (".RestoreProperties", "device methods are not served: a VM's devices follow the VM's state"),
    (".SaveProperties", "device methods are not served: a VM's devices follow the VM's state"),
    ("SetPowerState", "SetPowerState is deprecated in favour of RequestStateChange"),
    ("KillJob", "KillJob is deprecated: use RequestStateChange(4) on the job"),
    ("StartService", "the service is always started while vsms runs"),
    ("StopService", "the service is always started while vsms runs"),
    ("LockMedia", "device methods are not served"),
    ("GetDescriptor", "USB pass-through is not in the v1 API vsms serves"),
    ("CompatibilityInfo", "processor compatibility blobs of Windows hosts: not served"),
    ("Mount", "Mount always answers 32770 (mounting through qemu-nbd is not implemented), so "
              "no image is ever mounted"),
    ("NetworkJob", "switch methods complete within the call or run as Msvm_ConcreteJob"),
    ("Forwarding", "a switch's forwarding table is the Linux bridge's own; not served"),
    ("TransparentBridging", "a switch's forwarding table is the Linux bridge's own; not served"),
    ("SwitchesAmong", "a switch's forwarding table is the Linux bridge's own; not served"),
    ("HostedSwitchService", "the switch service is reached as Msvm_VirtualSwitchManagementService; "
                            "this association is not served"),
    ("SwitchService", "the switch service is served as Msvm_VirtualSwitchManagementService"),
    ("NetworkPort", "CIM base class; its Msvm_ port classes have rows of their own"),
    ("NetworkElementSettingData", "not served (switch settings are not v1 setting data here)"),
    ("Synthetic3DDisplay", "RemoteFX (R2 SP1) needs a host GPU shared through Hyper-V; QEMU's "
                           "virtio-gpu is not that device"),
    ("RemoteFX", "RemoteFX (R2 SP1) needs a host GPU shared through Hyper-V"),
    ("3dVideo", "RemoteFX (R2 SP1) needs a host GPU shared through Hyper-V"),
    ("Rdv", "RemoteFX (R2 SP1) needs a host GPU shared through Hyper-V"),
    ("PhysicalGPU", "RemoteFX (R2 SP1) needs a host GPU shared through Hyper-V"),
    ("Synth3d", "RemoteFX (R2 SP1) needs a host GPU shared through Hyper-V"),
    ("Terminal", "the Hyper-V console (RDP through vmms) has no equivalent: QEMU's consoles are "
                 "VNC/SPICE, reached through libvirt"),
    ("Keyboard.", "console input methods are not served (libvirt's send-key could serve them)"),
    ("Mouse.", "console input methods are not served"),
    ("RegisteredProfile", "profile registration (interop namespace) is not served yet; vsms "
                          "serves CIM_Namespace and CIM_ObjectManager in interop"),
    ("ElementConformsToProfile", "profile registration (interop namespace) is not served yet"),
    ("ReferencedProfile", "profile registration (interop namespace) is not served yet"),
    ("ResourcePoolConfiguration", "pools are primordial and fixed by the host; creating or "
                                  "changing pools is not served"),
    ("ResourcePoolSettingData", "pools are primordial and fixed by the host"),
    ("ResourcePoolComponent", "pools are primordial and fixed by the host"),
    ("Registration", "component registration classes of the Windows provider are not served"),
    ("VirtualizationComponent", "component registration classes of the Windows provider are "
                                "not served"),
    ("ResourceTypeDefinition", "component registration classes of the Windows provider are "
                               "not served"),
    ("ServicingSettings", "Windows servicing settings have no Linux equivalent"),
    ("Partition", "physical disk partitions of the host: vsms exposes no host storage objects"),
    ("PhysicalDisk", "host disks are not exposed (vsms serves virtual disks only)"),
    ("MediaPresent", "host media are not exposed (vsms serves virtual disks only)"),
    ("HostedDependency", "generic association; the specific associations are served instead"),
    ("USB", "USB pass-through is not in the v1 API vsms serves"),
    ("TapeDrive", "tape drives are not part of a v1 VM"),
)
# methods a provider declares only to refuse them with a reason (always 32770): not served
ALWAYS_REFUSED = {
    "Msvm_ImageManagementService.Mount": "answers 32770 with the reason: mounting through "
                                         "qemu-nbd is not implemented (this host has no nbd "
                                         "kernel module either)",
    "Msvm_ImageManagementService.Unmount": "answers 32770: nothing is ever mounted",
}
NOTES: dict[str, str] = {}  # served methods whose result depends on the host
# classes that exist only as embedded instances in method parameters, as in Hyper-V
EMBEDDED_ONLY = ("Msvm_VirtualHardDiskInfo", "Msvm_VirtualSystemImportSettingData",
                 "Msvm_SummaryInformation", "Msvm_KvpExchangeDataItem", "Msvm_Error",
                 "CIM_Error")
DEFAULT_METHOD_REASON = "declared; answers 32770 (Not supported) with an ErrorDescription"
DEFAULT_CLASS_REASON = "not served yet (not in vsms's schema)"
CIM_BASE_REASON = ("CIM base class not in vsms's schema; the Msvm_ classes derived from it have "
                   "rows of their own")


@dataclass(frozen=True)
class Row:
    kind: str  # "class" or "method"
    name: str  # "Msvm_X" or "Msvm_X.Method"
    page: str  # file stem of the reference page
    status: str
    reason: str


def pages(directory: Path) -> Iterator[tuple[str, str, str]]:
    """(kind, name, page stem) for every class and method page in ``directory``."""
    for page in sorted(directory.glob("*.md")):
        head = page.read_text(encoding="utf-8")[:2000]
        m = _METHOD_TITLE.search(head)
        if m:
            yield "method", f"{m.group(2)}_{m.group(3)}.{m.group(1)}", page.stem
            continue
        c = _CLASS_TITLE.search(head)
        if c and c.group(1) in ("Msvm", "CIM"):
            yield "class", f"{c.group(1)}_{c.group(2)}", page.stem


def _reason(name: str, default: str) -> str:
    low = name.lower()
    if name in ALWAYS_REFUSED:
        return ALWAYS_REFUSED[name]
    return next((why for key, why in REASONS if key.lower() in low), default)


def class_status(registry: Registry, classname: str) -> str:
    ns = registry.namespace(names.NAMESPACE)
    if classname.lower() not in ns.classes:
        return NOT_SERVED
    family = [classname, *(c.classname for c in ns.subclasses(classname, deep=True))]
    if any(c.lower() in ns.providers for c in family):
        return SERVED
    return DECLARED


def method_status(registry: Registry, classname: str, method: str) -> str:
    ns = registry.namespace(names.NAMESPACE)
    cls = ns.classes.get(classname.lower())
    if cls is None or method not in cls.methods:
        return NOT_SERVED
    if f"{classname}.{method}" in ALWAYS_REFUSED:
        return DECLARED
    family = [classname, *(c.classname for c in ns.subclasses(classname, deep=True))]
    for cn in family:
        prov = ns.providers.get(cn.lower())
        if prov is not None and method.lower() in prov.methods \
                and method in ns.classes[cn.lower()].methods:
            return SERVED
    return DECLARED


def rows(registry: Registry, directory: Path) -> list[Row]:
    out = []
    for kind, name, stem in pages(directory):
        if kind == "class":
            status = class_status(registry, name)
            default = ("declared, no instances" if status == DECLARED
                       else CIM_BASE_REASON if name.startswith("CIM_") else DEFAULT_CLASS_REASON)
            reason = "" if status == SERVED else _reason(name, default)
        else:
            cn, meth = name.split(".")
            status = method_status(registry, cn, meth)
            reason = "" if status == SERVED else _reason(
                name, DEFAULT_METHOD_REASON if status == DECLARED
                else f"{cn} does not declare it in vsms's schema")
        if status == SERVED:
            reason = NOTES.get(name, "")
        out.append(Row(kind, name, stem, status, reason))
    return [_explain(r, out) for r in out]


def _explain(row: Row, table: list[Row]) -> Row:
    """Reasons that depend on other rows: a CIM_ class or method served through its Msvm_
    subclass, a class that exists only embedded in method parameters."""
    if row.status == SERVED:
        return row
    if row.kind == "class" and row.name in EMBEDDED_ONLY and row.status == DECLARED:
        return Row(row.kind, row.name, row.page, row.status,
                   "exists only as embedded instances in method parameters (as in Hyper-V)")
    if row.name.startswith("CIM_"):
        twin = "Msvm_" + row.name[4:]
        if any(r.name == twin and r.status == SERVED for r in table):
            what = "method" if row.kind == "method" else "class"
            return Row(row.kind, row.name, row.page, row.status,
                       f"served as {twin} (the v1 {what}; vsms's schema has no separate "
                       f"CIM_ definition for it)" if row.status == NOT_SERVED
                       else f"served as {twin}")
    return row


def render(table: Iterable[Row]) -> str:
    table = list(table)
    counts = {k: sum(1 for r in table if r.kind == k) for k in ("class", "method")}
    served = {k: sum(1 for r in table if r.kind == k and r.status == SERVED)
              for k in ("class", "method")}
    lines = [
        "# Coverage of the Hyper-V v1 WMI reference",
        "",
        "Every class page and method page of the v1 reference (`shared/reference/hyperv-v1/pages`)",
        "and whether vsms serves it. *served*: a provider gives its instances (for a CIM_ base",
        "class: its own or a subclass's) or implements the method; *declared*: in vsms's schema",
        "(GetClass answers, enumeration is empty, the method answers 32770); *not served*: not in",
        "the schema. Generated by `.venv/bin/python -m vsms.coverage` from the pages and the",
        "running registry; `tests/cim/test_coverage.py` checks that this table names every page",
        "and agrees with what the service declares.",
        "",
        f"Classes: {served['class']} of {counts['class']} served. "
        f"Methods: {served['method']} of {counts['method']} served.",
        "",
        "| kind | name | status | reason | page |",
        "|---|---|---|---|---|",
    ]
    for r in sorted(table, key=lambda r: (r.kind, r.name.lower())):
        lines.append(f"| {r.kind} | {r.name} | {r.status} | {r.reason} | {r.page} |")
    return "\n".join(lines) + "\n"


def parse(text: str) -> list[Row]:
    """The rows of a rendered table (the inverse of :func:`render`)."""
    out = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in ("class", "method"):
            out.append(Row(cells[0], cells[1], cells[4], cells[2], cells[3]))
    return out


def main(argv: list[str]) -> int:  # pragma: no cover - a generator for the docs
    import tempfile

    from vsms.app import Service
    from vsms.settings import Settings

    directory = Path(argv[1]) if len(argv) > 1 else (
        Path(__file__).resolve().parents[3] / "shared" / "reference" / "hyperv-v1" / "pages")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(state_dir=Path(tmp) / "state", storage_roots=(Path(tmp) / "s",),
                            libvirt_uri="test:///default")
        with Service(settings) as service:
            sys.stdout.write(render(rows(service.registry, directory)))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv))
