"""Switch ports as adapters name them: resolving an RASD ``Connection`` (an Msvm_SwitchPort
path, WBEM URI or WMI form) to the libvirt network, port and switch it names."""

from __future__ import annotations

import re
from collections.abc import Callable

from vsms.errors import InUse, InvalidParameter
from vsms.model.switch import Switch
from vsms.model.vm import VirtualSystem
from vsms.virt.host import VirtHost

_KEY = re.compile(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"')


def port_keys(text: str) -> tuple[str, str]:
    """(switch Name, port Name) of an Msvm_SwitchPort path given as text."""
    keys = {k.lower(): v.replace('\\"', '"').replace("\\\\", "\\")
            for k, v in _KEY.findall(text)}
    switch_id, port = keys.get("systemname", ""), keys.get("name", "")
    if not switch_id or not port:
        raise InvalidParameter(f"{text!r} is not the path of an Msvm_SwitchPort: it needs the "
                               "keys SystemName (the switch) and Name (the port)")
    return switch_id, port


def find_port(host: VirtHost, switch_id: str, port: str) -> Switch:
    """The switch holding ``port``; InvalidParameter naming what does not exist."""
    sw = host.networks.get(switch_id)
    if sw is None:
        raise InvalidParameter(f"virtual switch {switch_id} does not exist: create it "
                               "(CreateSwitch) or name an existing Msvm_VirtualSwitch")
    if sw.port(port) is None:
        raise InvalidParameter(f"virtual switch '{sw.friendly}' has no port {port}: create "
                               "it first (CreateSwitchPort)")
    return sw


def port_user(systems: list[VirtualSystem], switch_id: str, port: str
              ) -> tuple[VirtualSystem, int] | None:
    """The VM and adapter index connected to the port, or None."""
    for vs in systems:
        for i, n in enumerate(vs.nics):
            if n.port.casefold() == port.casefold() \
                    and n.switch_id.casefold() == switch_id.casefold():
                return vs, i
    return None


def port_resolver(host: VirtHost, guid: str) -> Callable[[str], tuple[str, str, str]]:
    """The ``ResourceEnv.resolve_port`` of a change to VM ``guid``."""
    def resolve(text: str) -> tuple[str, str, str]:
        switch_id, port = port_keys(text)
        sw = find_port(host, switch_id, port)
        found = port_user([v for v in host.shared_systems()
                           if v.guid.upper() != guid.upper()], sw.id, port)
        if found is not None:
            raise InUse(f"switch port {port} of '{sw.friendly}' is already connected to "
                        f"virtual machine '{found[0].name}' ({found[0].guid}): create "
                        "another port (CreateSwitchPort)")
        return sw.network, port, sw.id
    return resolve
