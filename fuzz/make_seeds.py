"""Writes the seed corpora of the harnesses into fuzz/corpus/<target>/ (run once, kept in git).

- cimxml: every request body of the recorded client traffic in
  ../shared/reference/wbem/traffic/ (pywbem, pywbemcli, sblim wbemcli), plus the requests
  pywbem sends for our extrinsic methods with embedded instances, recorded here against a
  server that runs the fuzz handler's registry.
- embedded: instances as pywbem and WMI write them, wrapped and nested.
- export: small exports written by vsms.exportdir.writer (one dynamic VHD of 1 MiB, or
  configuration only), plus variants holding links, FIFOs or a qcow2 disk with a backing file.

Run: ``.venv/bin/python -m fuzz.make_seeds [--traffic DIR]``
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import tempfile
from pathlib import Path

import pywbem
from tests.exportdir.conftest import DISK1, GUID, config, settings_instances

from fuzz import export_codec
from fuzz.fuzz_cimxml import handler
from vsms.cim import names
from vsms.cim.embedded import serialize_instance
from vsms.exportdir import writer
from vsms.exportdir.layout import VHD_DIR, ExportConfig, ExportedDisk
from vsms.model.vm import ImageFormat
from vsms.wbem.server import WbemServer

HERE = Path(__file__).resolve().parent
TRAFFIC = HERE.parent.parent / "shared" / "reference" / "wbem" / "traffic"


def save(target: str, name: str, data: bytes) -> None:
    folder = HERE / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    tag = hashlib.sha1(data).hexdigest()[:10]
    for old in folder.glob(f"{name}-*"):  # a seed made again replaces the old one
        if old.name.rsplit("-", 1)[0] == name:
            old.unlink()
    (folder / f"{name}-{tag}").write_bytes(data)


# ------------------------------------------------------------------------------ cimxml
def traffic_bodies(folder: Path) -> list[bytes]:
    """Request bodies of the '>>> POST' blocks of the recorded traffic logs."""
    bodies: list[bytes] = []
    for log in sorted(folder.glob("traffic_*.log")):
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        i = 0
        while i < len(lines):
            if not lines[i].startswith(">>> POST"):
                i += 1
                continue
            i += 1
            while i < len(lines) and not lines[i].startswith(("<?xml", "<CIM")):
                i += 1
            body: list[str] = []
            while i < len(lines) and not lines[i].startswith("<<<"):
                body.append(lines[i])
                i += 1
            if body:
                bodies.append("\n".join(body).encode("utf-8"))
    return bodies


def recorded_calls() -> list[tuple[str, bytes]]:
    """What pywbem sends for extrinsic calls with embedded instances, references and arrays."""
    srv = WbemServer(handler().registry, http_port=0, workers=2)
    srv.start()
    out: list[tuple[str, bytes]] = []
    try:
        conn = pywbem.WBEMConnection(f"http://127.0.0.1:{srv.ports['http']}",
                                     default_namespace=names.NAMESPACE, timeout=30)
        conn.debug = True
        vsms = conn.EnumerateInstanceNames(names.VSMS)[0]
        ims = conn.EnumerateInstanceNames(names.IMAGE_SERVICE)[0]
        vm = conn.EnumerateInstanceNames(names.COMPUTER_SYSTEM)[0]
        gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": "fuzz vm"})
        rasd = settings_instances()[3]
        isd = pywbem.CIMInstance(names.IMPORT_SD, properties={
            "CreateCopy": True, "GenerateNewId": True, "Name": "copy",
            "TargetResourcePaths": ["/var/lib/vsms/a.vhd"],
            "SourceResourcePaths": pywbem.CIMProperty("SourceResourcePaths", None, type="string",
                                                      is_array=True)})
        esd = pywbem.CIMInstance(names.EXPORT_SD, properties={
            "CopyVmStorage": False, "CopySnapshotConfiguration": pywbem.Uint8(1)})
        calls: list[tuple[str, pywbem.CIMInstanceName, list[tuple[str, object]]]] = [
            ("DefineVirtualSystem", vsms, [("SystemSettingData", gsd),
                                           ("ResourceSettingData", [rasd])]),
            ("ImportVirtualSystemEx", vsms, [("ImportDirectory", "/var/lib/vsms/exp/vm"),
                                             ("ImportSettingData", isd)]),
            ("ExportVirtualSystemEx", vsms, [("ComputerSystem", vm),
                                             ("ExportDirectory", "/var/lib/vsms/exp"),
                                             ("ExportSettingData", esd)]),
            ("ModifyVirtualSystemResources", vsms, [("ComputerSystem", vm),
                                                    ("ResourceSettingData", [rasd, rasd])]),
            ("CreateDynamicVirtualHardDisk", ims, [("Path", "/var/lib/vsms/d.vhd"),
                                                   ("MaxInternalSize", pywbem.Uint64(1 << 30))]),
            ("RequestStateChange", vm, [("RequestedState", pywbem.Uint16(2)),
                                        ("TimeoutPeriod", pywbem.CIMDateTime(
                                            "00000000000030.000000:000"))]),
        ]
        for method, target, params in calls:
            conn.InvokeMethod(method, target, Params=params)
            out.append((method, conn.last_raw_request.encode("utf-8")))
        conn.ExecQuery("WQL", f"SELECT * FROM {names.COMPUTER_SYSTEM} WHERE ElementName = 'x'")
        out.append(("ExecQuery", conn.last_raw_request.encode("utf-8")))
        conn.Associators(vm, AssocClass=names.SETTINGS_DEFINE_STATE, ResultClass=names.VSSD)
        out.append(("Associators", conn.last_raw_request.encode("utf-8")))
        conn.close()
    finally:
        srv.stop()
    return out


# ------------------------------------------------------------------------------ embedded
def embedded_texts() -> list[tuple[str, bytes]]:
    texts: list[tuple[str, str]] = []
    for inst in settings_instances():
        texts.append((inst.classname, serialize_instance(inst)))
    typed = pywbem.CIMInstance("Msvm_Fuzz", properties={
        "U8": pywbem.Uint8(7), "S64": pywbem.Sint64(-3), "R": pywbem.Real64(1.5),
        "B": True, "T": pywbem.CIMDateTime("20260101120000.000000+060"),
        "I": pywbem.CIMDateTime("00000001020304.000000:000"),
        "Ref": pywbem.CIMInstanceName(names.COMPUTER_SYSTEM, keybindings={"Name": "x"},
                                      namespace=names.NAMESPACE),
        "Arr": [pywbem.Uint16(1), pywbem.Uint16(2)], "Empty": pywbem.CIMProperty(
            "Empty", None, type="string"),
    })
    texts.append(("typed", serialize_instance(typed)))
    inner = pywbem.CIMInstance(names.RASD, properties={"Address": "1"})
    nested = pywbem.CIMInstance("Msvm_Outer", properties={"Inner": pywbem.CIMProperty(
        "Inner", inner, embedded_object="instance")})
    texts.append(("nested", serialize_instance(nested)))
    gsd = serialize_instance(settings_instances()[1])
    texts.append(("named", f'<?xml version="1.0"?>\n<VALUE.NAMEDINSTANCE><INSTANCENAME '
                           f'CLASSNAME="{names.VSGSD}"/>{gsd}</VALUE.NAMEDINSTANCE>'))
    texts.append(("cdata", f"<![CDATA[{gsd}]]>"))
    wmi = re.sub(r"<PROPERTY ", '<PROPERTY CLASSORIGIN="CIM_X" PROPAGATED="true" ', gsd, count=2)
    wmi = wmi.replace("</INSTANCE>", '<QUALIFIER NAME="dynamic" TYPE="boolean"><VALUE>TRUE'
                                     "</VALUE></QUALIFIER></INSTANCE>")
    texts.append(("wmi", wmi))
    return [(n, t.encode("utf-8")) for n, t in texts]


# ------------------------------------------------------------------------------ export
def build_export(directory: Path, *, storage: bool, qcow2: bytes = b"") -> None:
    """A one-disk export; ``qcow2`` replaces the VHD by that qcow2 image."""
    directory.mkdir()
    writer.make_skeleton(directory)
    full = config(storage=storage)
    disks = full.disks[:1]
    if qcow2:
        disks = [ExportedDisk(DISK1, "/srv/vms/o.qcow2", f"{VHD_DIR}/o.qcow2",
                              ImageFormat.QCOW2, 1 << 20)]
        (directory / VHD_DIR / "o.qcow2").write_bytes(qcow2)
    cfg = ExportConfig(full.vm_guid, full.vm_name, full.exported_at, storage, False,
                       disks, full.source_host, full.vsms_version)
    if storage and not qcow2:
        subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", "-o",
                        "subformat=dynamic,force_size=on", str(directory / VHD_DIR / "disk1.vhd"),
                        "1M"], check=True, timeout=30)
    instances = [i for i in settings_instances() if DISK1 in str(i["InstanceID"])
                 or i.classname != names.RASD]
    writer.write_config(directory, cfg)
    writer.write_exp(directory, GUID, instances)
    writer.write_manifest(directory)


def export_seeds(work: Path) -> list[tuple[str, bytes]]:
    seeds: list[tuple[str, bytes]] = []
    for storage in (True, False):
        d = work / f"vm-{storage}"
        build_export(d, storage=storage)
        data = export_codec.from_directory(d)
        seeds.append((f"export-storage-{str(storage).lower()}", data))
    base = seeds[0][1]
    disk = f"{VHD_DIR}/disk1.vhd"
    seeds.append(("export-links", base + export_codec.encode([
        ("L", "Snapshots/escape", b"/etc/passwd"), ("H", "Snapshots/twin", disk.encode()),
        ("P", "Snapshots/fifo", b"")])))
    with tempfile.TemporaryDirectory() as tmp:
        overlay = Path(tmp) / "o.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096",
                        "-b", "/etc/hostname", "-F", "raw", str(overlay), "1M"], check=True,
                       timeout=30)
        build_export(work / "vm-qcow2", storage=True, qcow2=overlay.read_bytes())
        seeds.append(("export-qcow2-backing", export_codec.from_directory(work / "vm-qcow2")))
    return seeds


def regressions(work: Path) -> list[tuple[str, str, bytes]]:
    """(target, name, input) of every defect the fuzzers found, so the replay keeps them fixed."""
    call = traffic_bodies(TRAFFIC)[0] if TRAFFIC.is_dir() else b"<CIM/>"
    found = [
        ("embedded", "regress-unknown-type",
         b'<INSTANCE CLASSNAME="Msvm_X"><PROPERTY NAME="A" TYPE="uint5"/></INSTANCE>'),
        ("embedded", "regress-empty-namespace-path",
         b'<INSTANCE CLASSNAME="M"><PROPERTY.REFERENCE NAME="R"><VALUE.REFERENCE>'
         b"<LOCALINSTANCEPATH><LOCALNAMESPACEPATH>x</LOCALNAMESPACEPATH>"
         b'<INSTANCENAME CLASSNAME="C"/></LOCALINSTANCEPATH></VALUE.REFERENCE>'
         b"</PROPERTY.REFERENCE></INSTANCE>"),
        ("embedded", "regress-empty-namespace-segment",
         b'<INSTANCE CLASSNAME="M"><PROPERTY.REFERENCE NAME="R"><VALUE.REFERENCE>'
         b'<LOCALINSTANCEPATH><LOCALNAMESPACEPATH><NAMESPACE NAME="root//v"/>'
         b'</LOCALNAMESPACEPATH><INSTANCENAME CLASSNAME="C"/></LOCALINSTANCEPATH>'
         b"</VALUE.REFERENCE></PROPERTY.REFERENCE></INSTANCE>"),
        ("cimxml", "regress-multibyte-encoding",
         call.replace(b'encoding="utf-8"', b'encoding="shift_jis"')),
        ("cimxml", "regress-unknown-encoding",
         call.replace(b'encoding="utf-8"', b'encoding="utFF-8"')),
    ]
    d = work / "vm-regress"
    build_export(d, storage=False)
    cfg = (d / "config.xml").read_bytes()
    (d / "config.xml").write_bytes(cfg.replace(b"encoding='utf-8'", b"encoding='utFFFF-8'"))
    found.append(("export", "regress-unknown-encoding", export_codec.from_directory(d)))
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traffic", type=Path, default=TRAFFIC)
    args = ap.parse_args()
    for i, body in enumerate(traffic_bodies(args.traffic)):
        save("cimxml", f"traffic-{i:03d}", body)
    for method, body in recorded_calls():
        save("cimxml", f"pywbem-{method}", body)
    for name, text in embedded_texts():
        save("embedded", name, text)
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in export_seeds(Path(tmp)):
            save("export", name, data)
        for target, name, data in regressions(Path(tmp)):
            save(target, name, data)


if __name__ == "__main__":
    main()
