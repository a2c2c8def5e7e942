"""Child process of the switch crash-safety test: one scenario, killed at its N-th kill point.

Usage: python -m tests.switches.killswitch SCENARIO WORKDIR KILL_AT LIBVIRT_URI SWITCH_NAME

Starts a Service on WORKDIR/state, runs the scenario's set-up (a switch named SWITCH_NAME with
a port; for ``connect`` also a VM with an unconnected adapter, its GUID written to
WORKDIR/vm), installs kill points around the libvirt steps that change networks and domains,
and runs the operation (CreateSwitch, DeleteSwitch or ConnectSwitchPort). Prints ``DONE <kill
points reached>`` when it was not killed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pywbem

from vsms.app import Service
from vsms.cim import names
from vsms.mapping import switch_paths as sp
from vsms.settings import Settings
from vsms.testing.killpoints import KillPoints, Target

TARGETS = (
    Target("vsms.virt.networks", "define_network"),
    Target("vsms.virt.networks", "start_network"),
    Target("vsms.virt.networks", "stop_network"),
    Target("vsms.virt.networks", "undefine_network"),
    Target("vsms.virt.host", "VirtHost.define"),
)
PORT = "kill-port"


def call(service: Service, method: str, **params: object) -> dict[str, object]:
    path = service.registry.enumerate_instances(names.NAMESPACE, sp.SERVICE)[0].path
    rv, out = service.registry.invoke_method(names.NAMESPACE, path, method, dict(params))
    assert rv == 0, (method, rv, out)
    return dict(out)


def main() -> int:
    scenario, work_arg, kill_at, uri, switch = sys.argv[1:6]
    work = Path(work_arg)
    service = Service(Settings(state_dir=work / "state", storage_roots=(work,),
                               libvirt_uri=uri))
    switch_path = sp.switch_path(switch)
    if scenario != "create":
        call(service, "CreateSwitch", Name=switch, FriendlyName=f"kill {switch}")
        call(service, "CreateSwitchPort", VirtualSwitch=switch_path, Name=f"{PORT}-{switch}",
             FriendlyName=PORT)
    endpoint = None
    if scenario == "connect":
        vsms = service.registry.enumerate_instances(names.NAMESPACE, names.VSMS)[0].path
        gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": f"kill-{switch}"})
        nic = pywbem.CIMInstance(names.SYNTHETIC_NIC_SD, properties={
            "ResourceType": pywbem.Uint16(10),
            "ResourceSubType": "Microsoft Synthetic Ethernet Port"})
        rv, out = service.registry.invoke_method(names.NAMESPACE, vsms, "DefineVirtualSystem", {
            "SystemSettingData": gsd.tocimxmlstr(), "ResourceSettingData": [nic.tocimxmlstr()]})
        assert rv == 0, out
        guid = str(out["DefinedSystem"]["Name"])
        (work / "vm").write_text(guid)
        vs = service.host.get_system(guid)
        assert vs is not None
        endpoint = sp.vm_endpoint_path(guid, vs.nics[0].dev_id)
    points = KillPoints(int(kill_at), work / "hits.log")
    points.install(TARGETS)
    if scenario == "create":
        call(service, "CreateSwitch", Name=switch, FriendlyName=f"kill {switch}")
    elif scenario == "delete":
        call(service, "DeleteSwitch", VirtualSwitch=switch_path)
    else:
        call(service, "ConnectSwitchPort", SwitchPort=sp.port_path(switch, f"{PORT}-{switch}"),
             LANEndpoint=endpoint)
    points.disarm()
    points.uninstall()
    service.close()
    print(f"DONE {points.count}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
