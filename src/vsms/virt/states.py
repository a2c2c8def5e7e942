"""libvirt domain states → Hyper-V steady EnabledState."""

from __future__ import annotations

import libvirt

from vsms.cim.enums import EnabledState

_BY_LIBVIRT = {
    libvirt.VIR_DOMAIN_NOSTATE: EnabledState.UNKNOWN,
    libvirt.VIR_DOMAIN_RUNNING: EnabledState.ENABLED,
    libvirt.VIR_DOMAIN_BLOCKED: EnabledState.ENABLED,
    libvirt.VIR_DOMAIN_PAUSED: EnabledState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: EnabledState.STOPPING,
    libvirt.VIR_DOMAIN_SHUTOFF: EnabledState.DISABLED,
    libvirt.VIR_DOMAIN_CRASHED: EnabledState.DISABLED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: EnabledState.PAUSED,
}

_DESCRIPTIONS = {
    EnabledState.UNKNOWN: "its state is unknown",
    EnabledState.ENABLED: "it is running",
    EnabledState.DISABLED: "it is turned off",
    EnabledState.PAUSED: "it is paused",
    EnabledState.SUSPENDED: "it is saved (its memory is on disk)",
    EnabledState.STOPPING: "it is shutting down",
}


def steady_state(libvirt_state: int, has_saved_state: bool) -> EnabledState:
    """A shut-off domain with a managed-save image is SUSPENDED (Hyper-V "Saved")."""
    state = _BY_LIBVIRT.get(libvirt_state, EnabledState.UNKNOWN)
    if libvirt_state == libvirt.VIR_DOMAIN_SHUTOFF and has_saved_state:
        return EnabledState.SUSPENDED
    return state


def describe(state: EnabledState) -> str:
    return _DESCRIPTIONS.get(state, f"it is in state {state.name.lower()}")
