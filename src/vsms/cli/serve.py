"""``vsms serve``: run the service (the Python API behind a CIM-XML server on HTTP and HTTPS,
and WS-Management at ``POST /wsman`` on its own HTTP and HTTPS ports, 0 disabling one).

Start-up: settings (defaults < ``--config`` TOML < ``VSMS_*`` environment < flags) → the state
directory made private (umask 077 while start-up writes to it; existing files tightened, with a
log line: ``vsms.cli.statedir``) → the HTTPS certificate (self-signed, made in the state
directory on first start, unless one is configured) → authentication (the users file, PAM) and
the audit log (docs/security.md) → ``Service`` (store, libvirt, job recovery) → ``WbemServer``,
which refuses listeners that would expose credentials or an unauthenticated service beyond
loopback. Anything that stops the start (libvirt unreachable, a port taken, a bad certificate or
config, limits that contradict each other) is one line on stderr and exit status 1, with
whatever was already built closed again. SIGTERM and SIGINT stop the server first, then close
the service (running jobs are recorded as interrupted), and exit 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from vsms import certs
from vsms.cli import statedir
from vsms.errors import InvalidParameter, VsmsError
from vsms.settings import Settings, load_settings

if TYPE_CHECKING:
    from vsms.app import Service
    from vsms.wbem.server import WbemServer

log = logging.getLogger("vsms.serve")

LOG_FILE = "vsms.log"
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve", help="run the service (CIM-XML over HTTP and HTTPS)",
        description="Run vsms: the Hyper-V root/virtualization API over CIM-XML. Every option "
                    "can also be set in the --config TOML file (same name, with _ for -) or as a "
                    "VSMS_* environment variable (VSMS_LISTEN, VSMS_HTTP_PORT, VSMS_HTTPS_PORT, "
                    "VSMS_WSMAN_HTTP_PORT, VSMS_WSMAN_HTTPS_PORT, "
                    "VSMS_STATE_DIR, VSMS_STORAGE_ROOTS (':'-separated), VSMS_LIBVIRT_URI, "
                    "VSMS_TLS_CERT, VSMS_TLS_KEY, VSMS_HTTP_LISTEN, VSMS_AUTH, ...); flags win "
                    "over both. Users are managed with `vsms user`.")
    p.add_argument("--config", type=Path, metavar="FILE", help="TOML settings file")
    p.add_argument("--listen", metavar="ADDR", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--http-port", type=int, metavar="PORT", help="HTTP port (default 5988)")
    p.add_argument("--https-port", type=int, metavar="PORT", help="HTTPS port (default 5989)")
    p.add_argument("--wsman-http-port", type=int, metavar="PORT",
                   help="WS-Management (POST /wsman) HTTP port (default 5985; 0 disables)")
    p.add_argument("--wsman-https-port", type=int, metavar="PORT",
                   help="WS-Management (POST /wsman) HTTPS port (default 5986; 0 disables)")
    p.add_argument("--cert", type=Path, metavar="FILE",
                   help="HTTPS certificate (PEM); default: a self-signed one in the state dir")
    p.add_argument("--key", type=Path, metavar="FILE", help="private key of --cert (PEM)")
    p.add_argument("--state-dir", type=Path, metavar="DIR",
                   help="database, certificate and log (default /var/lib/vsms/state)")
    p.add_argument("--storage-root", type=Path, action="append", metavar="DIR",
                   help="where VMs, disks, exports and imports may live (repeatable; "
                        "default /var/lib/vsms/storage)")
    p.add_argument("--libvirt-uri", metavar="URI", help="libvirt URI (default qemu:///system)")
    p.add_argument("--http-listen", metavar="ADDR",
                   help="address of the plain-HTTP listener (default: --listen); loopback only "
                        "unless allow_remote_http = true")
    p.add_argument("--no-auth", action="store_true",
                   help="no authentication, every client is an administrator (local "
                        "development only: loopback listeners only)")
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error"], help="default info")
    p.set_defaults(run=run)


def settings_from(args: argparse.Namespace) -> Settings:
    """The effective settings of ``vsms serve`` for these parsed arguments."""
    return load_settings(
        args.config, os.environ, listen=args.listen, http_port=args.http_port,
        https_port=args.https_port, wsman_http_port=args.wsman_http_port,
        wsman_https_port=args.wsman_https_port, state_dir=args.state_dir,
        storage_roots=tuple(args.storage_root) if args.storage_root else None,
        libvirt_uri=args.libvirt_uri, tls_cert=args.cert, tls_key=args.key,
        http_listen=args.http_listen, auth=False if args.no_auth else None)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _refuse(err: BaseException) -> int:
    """The one-line refusal on stderr (and in the log file), exit status 1."""
    message = f"vsms serve: cannot start: {_one_line(err)}"
    log.error("%s", message, extra={"console": False})
    print(message, file=sys.stderr)
    return 1


def _setup_logging(level: str, state_dir: Path) -> logging.Handler | None:
    root = logging.getLogger()
    root.setLevel(getattr(logging, level.upper()))
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter(_LOG_FORMAT))
    console.addFilter(lambda record: getattr(record, "console", True))
    root.addHandler(console)
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(state_dir / LOG_FILE, encoding="utf-8")
    except OSError as exc:
        log.warning("not logging to %s: %s", state_dir / LOG_FILE, exc)
        return None
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    root.addHandler(handler)
    return handler


def _tls(settings: Settings, host_name: str) -> tuple[Path, Path]:
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise InvalidParameter("give both --cert and --key, or neither (a self-signed "
                               "certificate is then made in the state directory)")
    if settings.tls_cert is not None and settings.tls_key is not None:
        return settings.tls_cert, settings.tls_key
    return certs.ensure_certificate(settings.state_dir, host_name)


def run(args: argparse.Namespace) -> int:
    """Run the service until SIGTERM/SIGINT; 0 after a clean stop, 1 when it cannot start."""
    # Imported here so that the client commands never load libvirt or the server.
    from vsms import app
    from vsms.auth import setup as security
    from vsms.wbem import server as wbem
    from vsms.wbem.contexts import EnumerationContexts

    try:
        settings = settings_from(args)
    except VsmsError as err:
        print(f"vsms serve: cannot start: {_one_line(err)}", file=sys.stderr)
        return 1
    host_name = socket.gethostname()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning("%s again: already shutting down", signal.Signals(signum).name)
        else:
            log.info("%s received: shutting down", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        # what start-up writes to the state directory gets no group/other permissions; the
        # operator's umask is back before any request, for disks and directories under the
        # storage roots, which QEMU (another user) must reach
        with statedir.private_umask():
            try:
                changed, warnings = statedir.tighten(settings.state_dir, settings.storage_roots,
                                                     leave=(settings.users_file,))
            except OSError as err:
                print(f"vsms serve: cannot start: the state directory {settings.state_dir}: "
                      f"{_one_line(err)}", file=sys.stderr)
                return 1
            _setup_logging(args.log_level, settings.state_dir)
            for warning in warnings:
                log.warning("%s", warning)
            if changed:
                log.warning("tightened %d item(s) of the state directory %s to owner-only "
                            "access: %s", len(changed), settings.state_dir,
                            ", ".join(changed[:20]) + (", ..." if len(changed) > 20 else ""))
            try:
                cert, key = _tls(settings, host_name)
                ssl_context = certs.server_context(cert, key)
                auth = security.authenticator_from_settings(settings)
                audit = security.audit_from_settings(settings)
                statedir.make_storage_roots(settings.storage_roots)
                service = app.Service(settings)
            except (VsmsError, OSError) as err:
                return _refuse(err)
        try:
            server = wbem.WbemServer(
                service.registry, listen=settings.listen, http_port=settings.http_port,
                https_port=settings.https_port, ssl_context=ssl_context, host_name=host_name,
                auth=auth, audit=audit, http_listen=settings.http_listen or None,
                allow_remote_http=settings.allow_remote_http,
                max_connections=settings.max_connections,
                max_per_source=settings.max_connections_per_source,
                max_unauthenticated=settings.max_unauthenticated_connections,
                login_timeout=settings.login_timeout_seconds,
                max_buffered=settings.max_buffered_body_bytes,
                wsman_http_port=settings.wsman_http_port or None,
                wsman_https_port=settings.wsman_https_port or None,
                contexts=EnumerationContexts(max_open=settings.pull_max_open,
                                             max_per_owner=settings.pull_max_per_user))
            server.start()
        except (VsmsError, OSError) as err:
            service.close()
            return _refuse(err)
        ports = server.ports
        log.info("vsms serving root/virtualization on %s (http port %s, https port %s), "
                 "WS-Man at /wsman (wsman http port %s, wsman https port %s), "
                 "authentication %s, state %s, storage roots %s, libvirt %s", settings.listen,
                 ports.get("http"), ports.get("https"), ports.get("wsman-http", "off"),
                 ports.get("wsman-https", "off"), "on" if auth is not None else "OFF",
                 settings.state_dir, ", ".join(str(r) for r in settings.storage_roots),
                 settings.libvirt_uri)
        while not stop.wait(0.5):
            pass
        return _shutdown(server, service)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _shutdown(server: WbemServer, service: Service) -> int:
    """Stop accepting requests, then let the service record running jobs as interrupted."""
    status = 0
    try:
        server.stop()
    except Exception:
        log.exception("stopping the server failed")
        status = 1
    try:
        service.close()
    except Exception:
        log.exception("closing the service failed")
        status = 1
    log.info("stopped")
    return status
