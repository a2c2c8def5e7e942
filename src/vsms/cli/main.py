"""The ``vsms`` command: ``vsms serve`` runs the service, ``vsms user`` edits its users file;
every other command is a client of a running service.

The client commands talk to the service through pywbem (as virsh talks to libvirtd):
``vm``, ``disk``, ``export``, ``import``, ``import-settings``, ``jobs`` and ``snapshot``.
Global options (``--url``, ``--user``, ``--password``, ``--output``, ...) may come before or
after the command.
Exit status: 0 success, 1 the operation failed, 2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import pywbem

from vsms.cli import disk, jobs, serve, snapshot, transfer, user, vm
from vsms.cli.output import Output
from vsms.cli.session import CliError, Session, describe_wbem_error
from vsms.errors import VsmsError

DEFAULT_URL = "http://127.0.0.1:5988"


def _global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """The client options; on sub-commands they default to 'not given' so that a value given
    before the command is kept."""
    def d(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    env = os.environ
    g = parser.add_argument_group("connection and output")
    g.add_argument("--url", default=d(env.get("VSMS_URL", DEFAULT_URL)),
                   help=f"the service (default $VSMS_URL or {DEFAULT_URL})")
    g.add_argument("--user", default=d(env.get("VSMS_USER")), help="user name (or $VSMS_USER)")
    g.add_argument("--password", default=d(env.get("VSMS_PASSWORD")),
                   help="password (or $VSMS_PASSWORD)")
    g.add_argument("--output", choices=["text", "json"], default=d("text"),
                   help="text for people (default) or json for scripts")
    g.add_argument("--timeout", type=float, default=d(3600.0), metavar="SECONDS",
                   help="give up waiting for a job after this long (default 3600)")
    g.add_argument("--ca-cert", default=d(None), metavar="FILE",
                   help="CA certificate to verify an https:// service with")
    g.add_argument("--no-verify", action="store_true", default=d(False),
                   help="do not verify the certificate of an https:// service (self-signed)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vsms", description="Hyper-V-compatible virtual system management service: run it "
                                 "(serve) or drive a running one.")
    _global_options(parser, defaults=True)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, defaults=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve.add_parser(sub)
    user.add_parser(sub)
    for module in (vm, disk, transfer, jobs, snapshot):
        module.add_parser(sub, [common])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vsms`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command in ("serve", "user") or getattr(args, "local", False):  # not clients
        status: int = args.run(args)
        return status
    out = Output(args.output)
    try:
        session = Session(args.url, user=args.user, password=args.password,
                          verify=not args.no_verify, ca_certs=args.ca_cert,
                          timeout=args.timeout)
        status = args.run(args, session, out)
        return status
    except CliError as err:
        out.error(err.message, err.data)
        return err.status
    except pywbem.Error as err:
        out.error(describe_wbem_error(err, args.url))
        return 1
    except VsmsError as err:  # e.g. an embedded instance in a reply that cannot be parsed
        out.error(str(err))
        return 1
    except KeyboardInterrupt:
        out.error("interrupted: a job already started goes on in the service (see `vsms jobs`)")
        return 130


if __name__ == "__main__":
    sys.exit(main())
