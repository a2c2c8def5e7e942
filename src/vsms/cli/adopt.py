"""``vsms vm adopt NAME… | --unowned``: make libvirt domains no vsms owns this instance's VMs.

A local command like ``vsms user``: it runs on the service's host with the service's rights
(root), finds the state directory as ``vsms serve`` does (``--state-dir``, ``--config``,
``VSMS_STATE_DIR``), writes that instance's ID into each domain (``vsms.virt.adopt``) and one
``adopt`` line per adopted domain to the instance's audit log. A running service sees the
domain at its next request (libvirt reports the change). Domains of another vsms instance are
refused. Exit status: 0 every domain adopted (or already ours), 1 some failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import getpass
import os
from pathlib import Path

from vsms.auth.setup import audit_from_settings
from vsms.cli.output import Output
from vsms.errors import VsmsError
from vsms.settings import load_settings
from vsms.virt.adopt import instance_id
from vsms.virt.host import VirtHost


def add_action(acts: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    a = acts.add_parser(
        "adopt", help="let this service manage libvirt domains no vsms owns (local, as root)",
        description="Write this service's instance ID into libvirt domains that no vsms "
                    "instance owns (made with virsh, or by a vsms older than instance IDs), "
                    "so that the service shows and manages them; each adoption is written to "
                    "the audit log. Runs on the service's host, not over the network.")
    a.add_argument("names", nargs="*", metavar="NAME",
                   help="libvirt domain name or UUID (see `virsh list --all`)")
    a.add_argument("--unowned", action="store_true",
                   help="also adopt every domain whose vsms metadata names no instance")
    a.add_argument("--config", type=Path, metavar="FILE", help="TOML settings file of the service")
    a.add_argument("--state-dir", type=Path, metavar="DIR",
                   help="the service's state directory (default /var/lib/vsms/state)")
    a.add_argument("--libvirt-uri", metavar="URI", help="libvirt connection (default as serve)")
    a.add_argument("--output", choices=["text", "json"], default=argparse.SUPPRESS,
                   help="text for people (default) or json for scripts")
    a.set_defaults(run=run, local=True)


def run(args: argparse.Namespace) -> int:
    out = Output(getattr(args, "output", None) or "text")
    if not args.names and not args.unowned:
        out.error("name the domains to adopt (or pass --unowned): nothing done")
        return 2
    try:
        settings = load_settings(args.config, os.environ, state_dir=args.state_dir,
                                 libvirt_uri=args.libvirt_uri)
        instance = instance_id(settings.state_dir)
        audit = audit_from_settings(settings)
        with VirtHost(settings.libvirt_uri, settings.domain_type, instance=instance) as host:
            names = list(args.names) + (host.unowned() if args.unowned else [])
            results, failed = [], 0
            for name in names:
                try:
                    done = host.adopt(name)
                except VsmsError as err:
                    out.note(str(err))
                    results.append({"name": name, "adopted": False, "error": str(err)})
                    failed += 1
                    continue
                if done.kind != "ours":
                    audit.write("adopt", user=_who(), source="vsms vm adopt", domain=done.name,
                                guid=done.guid, kind=done.kind, instance=instance)
                results.append({"name": done.name, "guid": done.guid, "adopted": True,
                                "kind": done.kind})
    except VsmsError as err:
        out.error(str(err))
        return 1
    except PermissionError as err:
        out.error(f"{err.filename}: permission denied: run this as root (the service's user)")
        return 1
    lines = [f"{r['name']}: " + ("already managed by this service" if r.get("kind") == "ours"
                                 else f"adopted ({r['kind']}), ID {r['guid']}")
             for r in results if r["adopted"]]
    if not results:
        lines = ["no domain to adopt"]
    out.result(lines or ["nothing adopted"], results)
    return 1 if failed else 0


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
