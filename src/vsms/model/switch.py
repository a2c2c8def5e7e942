"""A virtual switch as vsms sees it, independent of CIM and of libvirt (``vsms.virt.networks``
keeps it in a libvirt network)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Port:
    """A switch port (Msvm_SwitchPort); connected when a VM adapter names it."""

    name: str
    friendly: str = ""
    scope: str = ""


@dataclass(frozen=True)
class HostPort:
    """An internal Ethernet port: the host's own port on a switch (the bridge)."""

    name: str
    friendly: str
    mac: str  # 00:15:5D:XX:XX:XX
    port: str = ""  # the switch port it is connected to ("" while it is on no switch)


@dataclass(frozen=True)
class Switch:
    """One libvirt network as a virtual switch."""

    id: str  # Msvm_VirtualSwitch.Name
    friendly: str  # ElementName
    network: str  # the libvirt network's name
    uuid: str = ""
    bridge: str = ""
    active: bool = False
    made_here: bool = True  # created by vsms (False: defined outside, e.g. virsh net-define)
    learnable: int = 0
    scope: str = ""
    ports: tuple[Port, ...] = ()
    internal: HostPort | None = None
    external: str = ""  # the host interface it is bound to ("" none)
    external_port: str = ""  # the switch port the external interface is connected to
    forward: str = ""  # libvirt forward mode ("" = isolated)
    addresses: tuple[str, ...] = field(default=(), compare=False)  # <ip> of a foreign network
    state: str = ""  # vsms's lifecycle record: creating, running, deleting ("" older vsms)
    owner: str = ""  # the instance ID of the vsms creating or deleting it

    def port(self, name: str) -> Port | None:
        return next((p for p in self.ports if p.name.casefold() == name.casefold()), None)
