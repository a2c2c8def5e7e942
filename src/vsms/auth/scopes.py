"""Per-VM authorization scopes: what a user granted roles per scope may see and do.

A VM's scope is the ``ScopeOfResidence`` of its Msvm_VirtualSystemGlobalSettingData ("" for a
VM in no scope). A user's *grants* map scope names to roles; the scope "" holds the user's
global role, which applies to every VM. A principal without grants (PAM users, users without
``--scope``, authentication off) is unscoped: its role applies everywhere and nothing here
filters it. For a scoped principal, the role on a VM is the higher of its global role and its
role in the VM's scope; a VM on which it has no role does not exist for it.

:class:`ScopedRegistry` is the registry as one principal sees it. It sits between the
dispatcher and the registry (``wbem/dispatch.py`` hands it to every intrinsic and extrinsic
operation) and filters in one place, whatever the provider:

* instances (enumerations, GetInstance, associations, references, queries and pull
  enumerations, which all go through these calls) are shown only when every VM and job they
  name is visible; a snapshot's settings (named after the snapshot's own GUID) count as its
  VM's, found through the host's snapshot index (``VirtHost.snapshot_owner``); a hidden one
  is CIM_ERR_NOT_FOUND, the same answer as a missing one;
* a job is visible to the user who started it (its ``Owner``, kept with the job record) and
  to users who can see every VM it affects (a job that names no VM: its owner and unscoped or
  globally granted users only);
* an extrinsic method on a hidden target is CIM_ERR_NOT_FOUND; a method whose parameters name a
  VM (references, embedded InstanceIDs ``Microsoft:<GUID>…``, ComputerSystem paths) on which the
  user lacks the method's role, or that does not exist, answers ReturnValue 32769 (Access
  denied), so a scoped user cannot tell a hidden VM from a missing one; a scope named in the
  parameters (``ScopeOfResidence`` of an embedded instance, ``SecurityScope`` of an import)
  needs the method's role in that scope, which is how a VM is created or imported into one; a
  method that names neither VM nor scope needs the role globally (except the read-only ones in
  :data:`ANY_SCOPE`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pywbem

from vsms.auth import policy
from vsms.auth.basic import Principal
from vsms.auth.policy import Role
from vsms.cim import names
from vsms.cim.embedded import parse_instance
from vsms.cim.enums import ReturnCode
from vsms.mapping.checks import canonical_guid
from vsms.mapping.snapshots import PREVIOUS_SD
from vsms.providers.context import visible_vm
from vsms.providers.registry import CIMTarget, Registry
from vsms.providers.snapshots import SnapshotTreeProvider

log = logging.getLogger("vsms.auth")

GLOBAL = ""  # the grant that applies to every VM
_JOB_CLASSES = {names.CONCRETE_JOB.lower(), names.STORAGE_JOB.lower(), "cim_concretejob",
                "cim_job"}
_SYSTEM_CLASSES = {names.COMPUTER_SYSTEM.lower(), "cim_computersystem", "cim_system"}
_GUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
_SETTING_ID = re.compile(r"Microsoft:\{?(" + _GUID + ")", re.IGNORECASE)
_SYSTEM_NAME = re.compile(r"ComputerSystem.*?Name\s*=\s*[\\\"']*\{?(" + _GUID + ")",
                          re.IGNORECASE | re.DOTALL)
_SCOPE_PROPERTIES = ("scopeofresidence", "securityscope")
#: methods a scoped user may call with its highest role although they name no VM or scope
ANY_SCOPE = frozenset(("getvirtualsystemimportsettingdata", "formaterror",
                       "getsummaryinformation"))  # NULL SettingData: the visible VMs


def role_in(principal: Principal, scope: str) -> Role | None:
    """The principal's role on a VM of ``scope`` (None: the VM is hidden from it)."""
    if not principal.grants:
        return principal.role
    grants = dict(principal.grants)
    roles = [r for r in (grants.get(GLOBAL), grants.get(scope)) if r is not None]
    return max(roles) if roles else None


def _key(path: pywbem.CIMInstanceName, name: str) -> Any:
    return next((v for k, v in path.keybindings.items() if k.lower() == name), None)


class ScopedRegistry(Registry):
    """The registry as ``principal`` sees it (see the module docstring); one per request.
    Every operation is the base registry's (called on it, so whatever wraps it still counts),
    its answer filtered; associators come from the filtered references and GetInstance."""

    def __init__(self, base: Registry, principal: Principal) -> None:
        super().__init__(base.host)
        self._ns = base._ns  # the same classes and providers, read-only here
        self.base = base
        self.principal = principal
        self.scoped = bool(principal.grants)
        self._vm_scopes: dict[str, str] | None = None  # GUID -> scope, read once per request
        self._snapshot_vms: dict[str, str | None] = {}  # snapshot GUID -> its VM's GUID
        self._job_vms: dict[str, set[str]] | None = None
        self._job_owners: dict[str, str] | None = None  # job InstanceID -> Owner

    # ------------------------------------------------------------------ what is visible
    def _scopes(self) -> dict[str, str]:
        if self._vm_scopes is None:
            found = self.base.enumerate_instances(names.NAMESPACE, names.VSGSD)
            self._vm_scopes = {}
            for inst in found:
                iid = str(_key(inst.path, "instanceid") or "")
                m = _SETTING_ID.match(iid)
                if m:
                    self._vm_scopes[m.group(1).upper()] = str(inst.get("ScopeOfResidence") or "")
        return self._vm_scopes

    def _vm_role(self, guid: str) -> Role | None:
        """The role on the VM ``guid``, or on the VM whose snapshot ``guid`` is (a snapshot's
        settings are named after its own GUID); None: hidden or missing."""
        scopes = self._scopes()
        scope = scopes.get(guid.upper())
        if scope is None:
            owner = self._snapshot_vm(guid.upper())
            scope = scopes.get(owner) if owner is not None else None
        return None if scope is None else role_in(self.principal, scope)

    def _snapshot_vm(self, guid: str) -> str | None:
        """The VM of the snapshot ``guid`` (None: no such snapshot), asked of the provider of
        the snapshot tree once per GUID and request."""
        if guid not in self._snapshot_vms:
            provider = self.base.namespace(names.NAMESPACE).providers.get(PREVIOUS_SD.lower())
            self._snapshot_vms[guid] = provider.snapshot_owner(guid) \
                if isinstance(provider, SnapshotTreeProvider) else None
        return self._snapshot_vms[guid]

    def _affected(self, job_id: str) -> set[str]:
        if self._job_vms is None:
            self._job_vms = {}
            for assoc in self.base.enumerate_instances(names.NAMESPACE,
                                                       names.AFFECTED_JOB_ELEMENT):
                job = assoc.get("AffectingElement")
                element = assoc.get("AffectedElement")
                if isinstance(job, pywbem.CIMInstanceName) and \
                        isinstance(element, pywbem.CIMInstanceName):
                    vms, _ = _subjects(element)
                    self._job_vms.setdefault(str(_key(job, "instanceid")).upper(),
                                             set()).update(vms)
        return self._job_vms.get(job_id.upper(), set())

    def _owner(self, job_id: str) -> str | None:
        """The user who started the job (its Owner, kept with the job record)."""
        if self._job_owners is None:
            self._job_owners = {}
            for cn in (names.CONCRETE_JOB, names.STORAGE_JOB):
                for job in self.base.enumerate_instances(names.NAMESPACE, cn):
                    iid = str(_key(job.path, "instanceid") or "").upper()
                    self._job_owners[iid] = str(job.get("Owner") or "")
        return self._job_owners.get(job_id.upper()) or None

    def _job_visible(self, job_id: str) -> bool:
        if self._owner(job_id) == self.principal.user:
            return True
        vms = self._affected(job_id)
        if not vms:
            return role_in(self.principal, GLOBAL) is not None
        return all(self._vm_role(g) is not None for g in vms)

    def _may_act_on_job(self, job_id: str, need: Role) -> bool:
        if self._owner(job_id) == self.principal.user:
            return self.principal.role >= need
        vms = self._affected(job_id)
        roles = [self._vm_role(g) for g in vms] if vms else [role_in(self.principal, GLOBAL)]
        return all(r is not None and r >= need for r in roles)

    def visible(self, path: pywbem.CIMInstanceName) -> bool:
        """May the principal see the instance at ``path`` (and everything it names)?"""
        if not self.scoped:
            return True
        if (path.namespace or names.NAMESPACE).strip("/").lower() != names.NAMESPACE:
            return True
        vms, jobs = _subjects(path)
        return all(self._vm_role(g) is not None for g in vms) and \
            all(self._job_visible(j) for j in jobs)

    def _keep(self, found: Iterable[pywbem.CIMInstance]) -> list[pywbem.CIMInstance]:
        return [i for i in found if self.visible(i.path)]

    # ------------------------------------------------------------------ intrinsic operations
    def enumerate_instances(self, namespace: str, classname: str
                            ) -> Sequence[pywbem.CIMInstance]:
        found = self.base.enumerate_instances(namespace, classname)
        return self._keep(found) if self.scoped else found

    def get_instance(self, namespace: str, path: pywbem.CIMInstanceName) -> pywbem.CIMInstance:
        full = path.copy()
        full.namespace = full.namespace or namespace
        if not self.visible(full):
            self.namespace(namespace).cls(path.classname)  # an unknown class stays that error
            raise pywbem.CIMError(pywbem.CIM_ERR_NOT_FOUND, f"instance {path} does not exist")
        return self.base.get_instance(namespace, path)

    def references(self, namespace: str, target: pywbem.CIMInstanceName,
                   result_class: str | None = None, role: str | None = None
                   ) -> list[pywbem.CIMInstance]:
        found = self.base.references(namespace, target, result_class, role)
        return self._keep(found) if self.scoped else found

    # ------------------------------------------------------------------ methods
    def invoke_method(self, namespace: str, target: CIMTarget, method: str,
                      params: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.scoped and isinstance(target, pywbem.CIMInstanceName):
            self.get_instance(namespace, target)  # a hidden target: CIM_ERR_NOT_FOUND
        if self.scoped and not self._may_call(target, method, params):
            log.warning("%s from %s may not call %s.%s on what it names (scoped user): "
                        "ReturnValue %d", self.principal.user, self.principal.source,
                        target.classname, method, ReturnCode.ACCESS_DENIED)
            return int(ReturnCode.ACCESS_DENIED), {}
        if not self.scoped:
            return self.base.invoke_method(namespace, target, method, params)
        token = visible_vm.set(lambda guid: self._vm_role(guid) is not None)
        try:
            return self.base.invoke_method(namespace, target, method, params)
        finally:
            visible_vm.reset(token)

    def _may_call(self, target: CIMTarget, method: str, params: Mapping[str, Any]) -> bool:
        need = policy.method_role(target.classname, method)
        if isinstance(target, pywbem.CIMInstanceName):
            jobs = _subjects(target)[1]
            if jobs:  # a visible job (checked above): its owner, or the role on its VMs
                return all(self._may_act_on_job(j, need) for j in jobs)
        vms: set[str] = set()
        scopes: set[str] = set()
        if isinstance(target, pywbem.CIMInstanceName):
            vms |= _subjects(target)[0]
        for value in params.values():
            _scan(value, vms, scopes)
        if not vms and not scopes:
            if method.lower() in ANY_SCOPE:
                return self.principal.role >= need
            have = role_in(self.principal, GLOBAL)
            return have is not None and have >= need
        for guid in vms:
            role = self._vm_role(guid)
            if role is None or role < need:
                return False
        for scope in scopes:
            role = role_in(self.principal, scope)
            if role is None or role < need:
                return False
        return True


def _subjects(path: pywbem.CIMInstanceName) -> tuple[set[str], set[str]]:
    """(VM GUIDs, job InstanceIDs) an object path names, references followed."""
    vms: set[str] = set()
    jobs: set[str] = set()
    cls = path.classname.lower()
    # a switch port or VLAN endpoint: its SystemName is the switch's GUID, no VM (switches are
    # host-wide, docs/switches.md)
    on_switch = any(k.lower() == "systemcreationclassname" and str(v).lower()
                    == "msvm_virtualswitch" for k, v in path.keybindings.items())
    for k, v in path.keybindings.items():
        if isinstance(v, pywbem.CIMInstanceName):
            more_vms, more_jobs = _subjects(v)
            vms |= more_vms
            jobs |= more_jobs
            continue
        key, text = k.lower(), str(v)
        if key == "instanceid" and cls in _JOB_CLASSES:
            jobs.add(text.upper())
        elif key in ("instanceid", "softwareelementid"):  # settings; the BIOS element's
            m = _SETTING_ID.match(text.strip())             # "Microsoft:<VM GUID>\\BIOS"
            if m:
                vms.add(m.group(1).upper())
        elif (key == "name" and cls in _SYSTEM_CLASSES) or (key == "systemname"
                                                            and not on_switch):
            # a VM, or a device of one (SystemName: the VM GUID; the host's name is no GUID)
            guid = canonical_guid(text)
            if guid is not None:
                vms.add(guid)
    return vms, jobs


def _scan(value: Any, vms: set[str], scopes: set[str]) -> None:
    """Collect the VMs and scopes a method parameter names."""
    if isinstance(value, list | tuple):
        for item in value:
            _scan(item, vms, scopes)
    elif isinstance(value, pywbem.CIMInstanceName):
        vms |= _subjects(value)[0]
    elif isinstance(value, pywbem.CIMInstance):
        _scan_instance(value, vms, scopes)
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("<"):
            try:
                inst = parse_instance(text)
            except Exception:  # a bad instance: the provider reports it; find its VMs anyway
                vms.update(m.upper() for m in _SETTING_ID.findall(text))
            else:
                # by property: a DeviceID such as the memory's "Microsoft:<fixed GUID>" is no VM
                _scan_instance(inst, vms, scopes)
            return
        # an object path sent as a string
        vms.update(m.upper() for m in _SYSTEM_NAME.findall(text))
        vms.update(m.upper() for m in _SETTING_ID.findall(text))


def _scan_instance(inst: pywbem.CIMInstance, vms: set[str], scopes: set[str]) -> None:
    for name, prop in inst.properties.items():
        value = prop.value
        if name.lower() in _SCOPE_PROPERTIES and isinstance(value, str) and value:
            scopes.add(value)
        elif name.lower() == "instanceid" and isinstance(value, str):
            m = _SETTING_ID.match(value.strip())
            if m:
                vms.add(m.group(1).upper())
        elif isinstance(value, pywbem.CIMInstanceName):
            vms |= _subjects(value)[0]
