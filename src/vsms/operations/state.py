"""Msvm_ComputerSystem.RequestStateChange: start, turn off, reset, pause, save.

``prepare_state_change`` checks the request against the VM's current state (refusals are
immediate) and registers the transition in ``Transitions``, so that from then until the job
ends the VM shows the transitional EnabledState (Starting, Stopping, Saving, Pausing, Resuming)
and RequestedState = the requested value. The job's ``run`` performs the change, waits (with a
deadline) until libvirt reports the target state; the job engine ends the transition.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from vsms.cim.enums import EnabledState, RequestedState
from vsms.errors import InvalidParameter, InvalidState, NotSupported, OperationFailed
from vsms.model.vm import ImageFormat, VirtualSystem
from vsms.operations.modify import describe_state, load_system
from vsms.operations.transitions import Reservation, Transition, Transitions
from vsms.operations.undo import OpContext
from vsms.virt.host import VirtHost

SETTLE_SECONDS = 30.0
_POLL = 0.1


@dataclass(frozen=True)
class Action:
    title: str  # job name, e.g. "Start Virtual Machine"
    verb: str  # "start"
    showing: EnabledState | None  # the transitional EnabledState, None: keep the steady one
    do: Callable[[VirtHost, str], None]  # calls the VirtHost method that does it (looked up
    # at call time, so a test's wrapper of the method is seen)
    target: EnabledState


_START = Action("Start Virtual Machine", "start", EnabledState.STARTING,
                lambda h, g: h.start(g), EnabledState.ENABLED)
_RESUME = Action("Resume Virtual Machine", "resume", EnabledState.RESUMING,
                 lambda h, g: h.resume(g), EnabledState.ENABLED)
_OFF = Action("Turn Off Virtual Machine", "turn off", EnabledState.STOPPING,
              lambda h, g: h.turn_off(g), EnabledState.DISABLED)
_PAUSE = Action("Pause Virtual Machine", "pause", EnabledState.PAUSING,
                lambda h, g: h.pause(g), EnabledState.PAUSED)
_SAVE = Action("Save Virtual Machine", "save", EnabledState.SAVING,
               lambda h, g: h.save(g), EnabledState.SUSPENDED)
_RESET = Action("Reset Virtual Machine", "reset", None,
                lambda h, g: h.reset(g), EnabledState.ENABLED)

# requested state -> {current steady state -> action}
_PLAN: dict[RequestedState, dict[EnabledState, Action]] = {
    RequestedState.ENABLED: {EnabledState.DISABLED: _START, EnabledState.SUSPENDED: _START,
                             EnabledState.PAUSED: _RESUME},
    RequestedState.DISABLED: {EnabledState.ENABLED: _OFF, EnabledState.PAUSED: _OFF,
                              EnabledState.SUSPENDED: _OFF},
    RequestedState.PAUSED: {EnabledState.ENABLED: _PAUSE},
    RequestedState.SUSPENDED: {EnabledState.ENABLED: _SAVE, EnabledState.PAUSED: _SAVE},
    RequestedState.REBOOT: {EnabledState.ENABLED: _RESET},
}

_WHAT = {RequestedState.ENABLED: "start", RequestedState.DISABLED: "turn off",
         RequestedState.PAUSED: "pause", RequestedState.SUSPENDED: "save",
         RequestedState.REBOOT: "reset"}
_HINT = {RequestedState.PAUSED: "only a running machine can be paused",
         RequestedState.SUSPENDED: "only a running or paused machine can be saved",
         RequestedState.REBOOT: "only a running machine can be reset"}


def parse_requested(value: object) -> RequestedState:
    """The RequestedState parameter: 11 (Reset) is Not supported; other unknown values are
    invalid."""
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        raise InvalidParameter(f"RequestedState {value!r} is not a number") from None
    if number == RequestedState.RESET:
        raise NotSupported("RequestedState 11 (Reset) is reserved for future use: use 10 "
                           "(Reboot) for a hard reset")
    try:
        requested = RequestedState(number)
    except ValueError:
        requested = RequestedState.NOT_APPLICABLE
    if requested not in _PLAN:
        raise InvalidParameter(
            f"RequestedState {number} is not supported for a virtual machine: use 2 (start), "
            "3 (turn off), 10 (reset), 32768 (pause) or 32769 (save)")
    return requested


def _plan(vs: VirtualSystem, state: EnabledState, requested: RequestedState) -> Action:
    action = _PLAN[requested].get(state)
    if action is not None:
        return action
    label = f"'{vs.name}' ({vs.guid})"
    same = int(requested) in EnabledState._value2member_map_ and state is EnabledState(
        int(requested))
    if same:
        raise InvalidState(f"{label} is already {describe_state(state)}: nothing to do")
    hint = _HINT.get(requested, "")
    raise InvalidState(f"cannot {_WHAT[requested]} {label}: it is {describe_state(state)}"
                       + (f"; {hint}" if hint else ""))


@dataclass
class StateChange:
    host: VirtHost
    reservation: Reservation  # released by the job engine when the job ends
    vs: VirtualSystem
    requested: RequestedState
    action: Action

    def run(self, ctx: OpContext) -> None:
        guid = self.vs.guid
        ctx.status(f"{self.action.title}: '{self.vs.name}'")
        self.action.do(self.host, guid)
        ctx.progress(90)
        deadline = time.monotonic() + SETTLE_SECONDS
        state = self.host.state(guid)
        while state is not self.action.target and time.monotonic() < deadline:
            time.sleep(_POLL)
            state = self.host.state(guid)
        if state is not self.action.target:
            raise OperationFailed(
                f"could not {self.action.verb} '{self.vs.name}' ({guid}): it is "
                f"{describe_state(state)} after {SETTLE_SECONDS:.0f} s instead of "
                f"{describe_state(self.action.target)}; check the libvirt log of the domain")
        ctx.progress(100)


def _check_savable(vs: VirtualSystem) -> None:
    """QEMU blocks saving the memory of a VM with a VHD or VHDX image (no migration support
    in those block drivers): refuse at once instead of failing in the job."""
    blocked = [m.path for m in vs.disk_media() if m.format in (ImageFormat.VHD, ImageFormat.VHDX)]
    if blocked:
        raise NotSupported(
            f"cannot save virtual machine '{vs.name}' ({vs.guid}): QEMU cannot save the memory of "
            f"a VM with VHD or VHDX disks ({', '.join(blocked)}); turn it off instead, or run it "
            "from qcow2 copies (import with CreateCopy and a .qcow2 TargetResourcePaths entry)")


def prepare_state_change(host: VirtHost, transitions: Transitions, guid: str,
                         requested_value: object) -> StateChange:
    """Check the request and begin the transition (the caller hands ``.reservation`` to the
    job that runs the change, or releases it)."""
    requested = parse_requested(requested_value)
    vs = load_system(host, guid)
    state = host.state(vs.guid)
    action = _plan(vs, state, requested)
    if requested is RequestedState.SUSPENDED:
        _check_savable(vs)
    held = transitions.begin(vs.guid, Transition(action.showing, requested,
                                                 what=action.title.lower()), vs.name)
    if host.state(vs.guid) is not state:  # changed under us (by another request or outside)
        held.release()
        raise InvalidState(f"the state of '{vs.name}' ({vs.guid}) changed while the request "
                           "was checked: read EnabledState and try again")
    return StateChange(host, held, vs, requested, action)
