"""The HTTP layer: HTTP/1.1 (keep-alive) and HTTPS listeners in front of a protocol handler:
:class:`~vsms.wbem.protocol.CimXmlHandler` on the CIM-XML listeners, and
:class:`~vsms.wsman.handler.WsmanHandler` (``POST /wsman``) on the WS-Management listeners
(``wsman_http_port``, ``wsman_https_port``), which shares the CIM-XML handler's dispatcher (roles,
scopes, audit, enumeration contexts). Every listener gets the same admission, authentication and
limits; the handler is chosen by the listener a connection arrived on.

One asyncio thread does all socket work (accept, TLS, reading with deadlines, writing); each
authentication and each complete request runs on a bounded pool of worker threads, so idle
keep-alive connections cost no worker. Per request, in this order: request line and headers →
authentication (HTTP Basic, ``auth``) → only then the body → the protocol handler, which gets the
caller's :class:`Principal`. A refused login (401, or 429 during back-off) is answered and the
connection closed without reading the body. The one request served without credentials is a
WS-Man Identify (``vsms.auth.anonymous``: a body of at most 8 KiB is read, within login_timeout,
and answered if it is an Identify; anything else gets the same 401).

Limits: ``max_body`` (413), ``max_header`` (431), ``header_timeout`` for the request line and
headers and ``body_timeout`` for the body (408), ``idle_timeout`` between requests on a
connection; connections (:class:`~vsms.wbem.admission.Admission`): ``max_connections`` in all,
``max_per_source`` per client address, ``max_unauthenticated`` not yet logged in (the oldest idle
one is closed to admit a newcomer), and ``login_timeout``: a connection that has not logged in
must deliver its first request's headers (after the TLS handshake) within it; request bodies
buffered at once: ``max_buffered`` bytes (503). One log line per request.

Security (docs/security.md): ``audit`` logs every extrinsic call; the plain-HTTP listener (on
``http_listen``, default ``listen``) must be on a loopback address unless
``allow_remote_http``, and without ``auth`` every listener must be: ``start()`` refuses
otherwise with InvalidParameter.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any
from urllib.parse import unquote

from vsms.auth.anonymous import may_identify
from vsms.auth.audit import AuditLog
from vsms.auth.basic import Authenticator, Principal, Refusal
from vsms.auth.policy import Role
from vsms.auth.setup import check_listeners
from vsms.errors import InvalidParameter, SystemNotAvailable
from vsms.providers.registry import Registry
from vsms.wbem.admission import (
    Admission,
    BodyBudget,
    Conn,
    HeapTrim,
    fixed_mmap_threshold,
    trim_heap,
)
from vsms.wbem.contexts import EnumerationContexts
from vsms.wbem.protocol import CimXmlHandler, Reply, error_reply
from vsms.wbem.streams import keep_alive, linger, start_tls, write_reply

log = logging.getLogger("vsms.wbem")

MiB = 1024 * 1024


class _Abort(Exception):
    """Stop reading this connection after sending ``reply`` (may be None: just close)."""

    def __init__(self, reply: Reply | None) -> None:
        super().__init__("abort")
        self.reply = reply


class WbemServer:
    """Serves ``registry`` over CIM-XML. ``start()`` binds (port 0 picks a free port, see
    ``ports``), ``stop()`` closes every listener and connection and waits for the workers."""

    def __init__(self, registry: Registry, *, listen: str = "127.0.0.1",
                 http_port: int | None = 5988, https_port: int | None = None,
                 ssl_context: ssl.SSLContext | None = None,
                 host_name: str | None = None, workers: int = 8, max_connections: int = 256,
                 max_body: int = 16 * MiB, max_header: int = 64 * 1024,
                 header_timeout: float = 30.0, body_timeout: float = 60.0,
                 idle_timeout: float = 120.0, contexts: EnumerationContexts | None = None,
                 auth: Authenticator | None = None, audit: AuditLog | None = None,
                 http_listen: str | None = None, allow_remote_http: bool = False,
                 max_per_source: int = 64, max_unauthenticated: int | None = None,
                 login_timeout: float = 5.0, max_buffered: int = 64 * MiB,
                 wsman_http_port: int | None = None,
                 wsman_https_port: int | None = None) -> None:
        if https_port is not None and ssl_context is None:
            raise InvalidParameter("an HTTPS port needs an ssl_context with the server "
                                   "certificate; pass ssl_context or leave https_port unset")
        if wsman_https_port is not None and ssl_context is None:
            raise InvalidParameter("a WS-Man HTTPS port needs an ssl_context with the server "
                                   "certificate; pass ssl_context or leave wsman_https_port "
                                   "unset")
        if http_port is None and https_port is None:
            raise InvalidParameter("give an HTTP port, an HTTPS port, or both")
        self.listen = listen
        self.http_listen = listen if http_listen is None else http_listen
        self.allow_remote_http = allow_remote_http
        self.authenticated = auth is not None
        self.auth = auth
        self.handler = CimXmlHandler(registry, host_name, contexts, audit=audit)
        self.wsman: Any = None
        if wsman_http_port is not None or wsman_https_port is not None:
            from vsms.wsman.handler import WsmanHandler
            self.wsman = WsmanHandler(self.handler.dispatcher)
        self.workers = workers
        self.max_body, self.max_header = max_body, max_header
        if max_buffered < max_body:
            raise InvalidParameter(f"max_buffered ({max_buffered}) must be at least max_body "
                                   f"({max_body}), or no body of the largest size is accepted")
        self.header_timeout, self.body_timeout = header_timeout, body_timeout
        self.idle_timeout, self.login_timeout = idle_timeout, login_timeout
        self.admission = Admission(max_connections=max_connections,
                                   max_per_source=max_per_source,
                                   max_unauthenticated=max_unauthenticated)
        self.bodies = BodyBudget(max_buffered)
        self.trim = HeapTrim()
        self._housekeeper: asyncio.Task[None] | None = None
        self._warned: dict[str, float] = {}
        self._wanted = [(s, a, p, c) for s, a, p, c in (
            ("http", self.http_listen, http_port, None),
            ("https", listen, https_port, ssl_context),
            ("wsman-http", self.http_listen, wsman_http_port, None),
            ("wsman-https", listen, wsman_https_port, ssl_context)) if p is not None]
        self._ports: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._servers: list[Any] = []
        self._conns: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._closing = False

    @property
    def ports(self) -> dict[str, int]:
        """Bound ports by listener ("http", "https", "wsman-http", "wsman-https"); empty before
        start()."""
        return dict(self._ports)

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        if self._loop is not None:
            return
        check_listeners(
            https_listen=next((a for s, a, _, _ in self._wanted if s.endswith("https")), None),
            http_listen=next((a for s, a, _, _ in self._wanted if s.endswith("http")), None),
            authenticated=self.authenticated, allow_remote_http=self.allow_remote_http)
        self._closing = False
        fixed_mmap_threshold()  # large request buffers go back to the system when freed
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="vsms-wbem")
        self._thread = threading.Thread(target=self._run, args=(loop,), name="vsms-wbem-io",
                                        daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._bind(), loop).result(timeout=30)
        except BaseException:
            self._halt(5.0)
            raise
        log.info("CIM-XML server listening on %s (%s)%s", self.listen,
                 ", ".join(f"{s} {p}" for s, p in self._ports.items()),
                 "" if self.http_listen == self.listen or "http" not in self._ports
                 else f", HTTP on {self.http_listen}")

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=timeout)
        except Exception as exc:  # keep tearing down; the loop thread is stopped next
            log.warning("CIM-XML server shutdown was not clean: %s", exc)
        self._halt(timeout)
        self.handler.close()
        log.info("CIM-XML server stopped")

    def __enter__(self) -> WbemServer:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _halt(self, timeout: float) -> None:
        loop, thread, pool = self._loop, self._thread, self._pool
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self._loop = self._thread = self._pool = None
        self._servers = []
        self._ports = {}

    async def _bind(self) -> None:
        for scheme, address, port, ctx in self._wanted:
            try:  # TLS starts in _client, after the connection was admitted
                handler = self.wsman if scheme.startswith("wsman") else self.handler
                srv = await asyncio.start_server(
                    functools.partial(self._client, ctx, handler), address, port,
                    limit=self.max_header, reuse_address=True)
            except OSError as exc:
                await self._shutdown()
                flag = f"--{scheme}-port"
                env = f"VSMS_{scheme.upper().replace('-', '_')}_PORT"
                raise SystemNotAvailable(
                    f"cannot listen for {scheme.upper()} on {address} port {port}: "
                    f"{exc.strerror or exc}; another program may use that port: stop it, or "
                    f"choose another port ({flag}, {env}) or listen "
                    f"address (--listen)") from exc
            self._servers.append(srv)
            self._ports[scheme] = srv.sockets[0].getsockname()[1]
        self._housekeeper = asyncio.get_running_loop().create_task(self._housekeeping())

    async def _housekeeping(self, every: float = 1.0) -> None:
        """Once a second: give the memory of a burst back to the system (HeapTrim)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(every)
            if self.trim.due():
                await loop.run_in_executor(self._pool, trim_heap)

    async def _shutdown(self) -> None:
        """Stop listening, close every connection (a request being handled finishes first)."""
        self._closing = True
        if self._housekeeper is not None:
            self._housekeeper.cancel()
            await asyncio.gather(self._housekeeper, return_exceptions=True)
            self._housekeeper = None
        for srv in self._servers:
            srv.close()
        for writer in list(self._conns.values()):
            writer.transport.abort()
        if self._conns:
            _, late = await asyncio.wait(list(self._conns), timeout=self.body_timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for srv in self._servers:
            await srv.wait_closed()

    # ------------------------------------------------------------------ connections
    async def _client(self, tls: ssl.SSLContext | None, handler: Any,
                      reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        source = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        admitted = self.admission.admit(source, lambda: writer.transport.abort())
        if isinstance(admitted, str):
            await self._refuse(writer, tls, source, client, admitted)
            return
        conn = admitted
        task = asyncio.current_task()
        assert task is not None
        self._conns[task] = writer
        try:
            if tls is not None and not await start_tls(writer, tls, self.login_timeout):
                return
            while not self._closing:
                try:
                    if not await self._request(handler, reader, writer, conn, source, client):
                        return
                except _Abort as abort:
                    if abort.reply is not None:
                        await self._send(writer, abort.reply, close=True)
                        self._log(client, abort.reply, 0.0)
                        self.trim.passed(await linger(reader))
                    return
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError,
                OSError):
            return
        except asyncio.CancelledError:  # only at shutdown: end quietly
            return
        finally:
            self.admission.release(conn)
            self.trim.closed()
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(writer.wait_closed(), 2.0)
            self._conns.pop(task, None)

    async def _refuse(self, writer: asyncio.StreamWriter, tls: ssl.SSLContext | None,
                      source: str, client: str, why: str) -> None:
        """A connection not admitted: 503 on plain HTTP, closed at once (before any TLS)."""
        now = time.monotonic()
        if now - self._warned.get(source, -3600.0) >= 60.0:
            if len(self._warned) >= 4096:
                self._warned.clear()
            self._warned[source] = now
            log.warning("connections refused from %s: %s (logged once a minute per address)",
                        source, why)
        try:
            if tls is None:
                busy = error_reply(503, None, why)
                busy.headers.append(("Retry-After", "1"))
                await self._send(writer, busy, close=True)
                self._log(client, busy, 0.0)
        except (ConnectionError, TimeoutError, OSError):
            pass
        finally:
            writer.transport.abort()

    async def _request(self, handler: Any, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter, conn: Conn, source: str, client: str) -> bool:
        """Read, authenticate and answer one request; False: close the connection."""
        conn.waiting = True
        request = await self._read(reader, conn)
        if request is None:
            return False
        conn.waiting = False
        method, version, headers, started = request
        loop = asyncio.get_running_loop()
        if (self.auth is not None and handler is self.wsman
                and may_identify(self.auth.limiter, method, headers, source)):
            reply = await self._identify(reader, writer, headers, method, source)
            keep = keep_alive(version, headers)  # still not logged in (login_timeout)
            await self._send(writer, reply, close=not keep)
            self._log(client, reply, time.perf_counter() - started)
            return keep
        principal = await self._authenticate(loop, headers, source)
        self.admission.authenticated(conn)
        size, body = await self._body(reader, writer, headers, method)
        try:
            reply = await loop.run_in_executor(
                self._pool, functools.partial(handler.handle, method, headers, body,
                                              principal=principal, source=source))
        finally:
            body = b""
            self.bodies.give(size)
            self.trim.passed(size)
        keep = keep_alive(version, headers)
        await self._send(writer, reply, close=not keep)
        self._log(client, reply, time.perf_counter() - started)
        return keep

    async def _identify(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        headers: dict[str, str], method: str, source: str) -> Reply:
        """A small WS-Man request without credentials (vsms.auth.anonymous): the Identify reply,
        or the refusal any request without credentials gets (raised). Its body must arrive
        within login_timeout."""
        size, body = await self._body(reader, writer, headers, method, self.login_timeout)
        try:
            reply: Reply | None = await asyncio.get_running_loop().run_in_executor(
                self._pool, functools.partial(self.wsman.identify, headers, body,
                                              source=source))
        finally:
            self.bodies.give(size)
        if reply is None:
            await self._authenticate(asyncio.get_running_loop(), headers, source)
            raise _Abort(None)  # not reached: a request without credentials is refused
        return reply

    async def _authenticate(self, loop: asyncio.AbstractEventLoop, headers: dict[str, str],
                            source: str) -> Principal:
        """The caller, before the body is read; a refusal aborts the connection."""
        if self.auth is None:
            return Principal("", Role.ADMINISTRATOR, "none", source)
        who = await loop.run_in_executor(
            self._pool, self.auth.authenticate, headers.get("authorization"), source)
        if isinstance(who, Refusal):
            reply = error_reply(who.status, None, who.message,
                                unquote(headers.get("cimmethod", "-") or "-"))
            reply.headers.extend(who.headers)
            raise _Abort(reply)
        return who

    async def _line(self, reader: asyncio.StreamReader, timeout: float) -> bytes:
        try:
            async with asyncio.timeout(timeout):  # no task per line, unlike wait_for
                return await reader.readline()
        except (ValueError, asyncio.LimitOverrunError):
            raise _Abort(error_reply(431, None, f"request line or header longer than "
                                                f"{self.max_header} bytes")) from None

    async def _read(self, reader: asyncio.StreamReader, conn: Conn
                    ) -> tuple[str, str, dict[str, str], float] | None:
        """One request's line and headers: (method, version, headers, start time), or None at
        EOF/idle. The body is read later, once the request is authenticated."""
        while True:
            # an idle keep-alive connection may wait for its next request up to idle_timeout;
            # once the first byte arrives, the request line and headers get header_timeout;
            # a connection that has not logged in must be done by login_timeout after it opened
            login = None if conn.authenticated else conn.opened + self.login_timeout
            now = time.monotonic()
            try:
                wait = self.idle_timeout if login is None else min(self.idle_timeout,
                                                                   login - now)
                if wait <= 0:
                    return None
                async with asyncio.timeout(wait):
                    first = await reader.read(1)
            except TimeoutError:
                return None
            if not first:
                return None
            started = time.perf_counter()
            deadline = started + self.header_timeout
            within = f"{self.header_timeout:g} s"
            if login is not None and login - time.monotonic() < self.header_timeout:
                deadline = started + login - time.monotonic()
                within = (f"{self.login_timeout:g} s of connecting (the limit before a "
                          f"connection has logged in)")
            if first == b"\n":
                continue
            try:
                line = first + await self._line(reader, deadline - time.perf_counter())
            except TimeoutError:
                raise _Abort(error_reply(408, None, f"request line not received within "
                                                    f"{within}")) from None
            if line not in (b"\r\n", b"\n"):
                break
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _Abort(error_reply(400, None, "malformed HTTP request line"))
        headers: dict[str, str] = {}
        size = len(line)
        while True:
            remaining = deadline - time.perf_counter()
            try:
                if remaining <= 0:
                    raise TimeoutError
                hl = await self._line(reader, remaining)
            except TimeoutError:
                raise _Abort(error_reply(408, None, f"headers not received within "
                                                    f"{within}")) from None
            if not hl:
                return None
            size += len(hl)
            if size > self.max_header:
                raise _Abort(error_reply(431, None, f"headers larger than {self.max_header} "
                                                    f"bytes"))
            if hl in (b"\r\n", b"\n"):
                break
            name, sep, value = hl.decode("latin-1").partition(":")
            if not sep:
                raise _Abort(error_reply(400, None, "malformed HTTP header line"))
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        headers[":path"] = parts[1]  # a name no header line can give (the name ends at ":")
        return parts[0], parts[2], headers, started

    async def _body(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    headers: dict[str, str], method: str,
                    timeout: float | None = None) -> tuple[int, bytes]:
        """(bytes taken from the body budget, the body); the caller gives the bytes back.
        ``timeout``: for the body (default body_timeout)."""
        if "transfer-encoding" in headers and headers["transfer-encoding"].lower() != "identity":
            raise _Abort(error_reply(411, None, "chunked request bodies are not supported; "
                                                "send Content-Length"))
        raw = headers.get("content-length")
        if raw is None:
            if method in ("POST", "M-POST"):
                raise _Abort(error_reply(411, None, "a Content-Length header is required"))
            return 0, b""
        try:
            length = int(raw)
            if length < 0:
                raise ValueError(raw)
        except ValueError:
            raise _Abort(error_reply(400, None, f"bad Content-Length {raw!r}")) from None
        if length > self.max_body:
            raise _Abort(error_reply(413, None, f"request body of {length} bytes is larger than "
                                                f"the limit of {self.max_body} bytes"))
        if not self.bodies.take(length):
            busy = error_reply(503, None, f"the server holds as many request bodies as it may "
                                          f"({self.bodies.limit} bytes); retry in a moment")
            busy.headers.append(("Retry-After", "1"))
            raise _Abort(busy)
        try:
            return length, await self._read_body(reader, writer, headers, length,
                                                 timeout or self.body_timeout)
        except BaseException:
            self.bodies.give(length)
            self.trim.passed(length)
            raise

    async def _read_body(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         headers: dict[str, str], length: int, timeout: float) -> bytes:
        """Read in chunks into one buffer of the announced size (no second copy)."""
        if "100-continue" in headers.get("expect", "").lower():
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = bytearray(length)
        view = memoryview(body)
        pos = 0
        try:
            async with asyncio.timeout(timeout):  # the whole body's deadline
                while pos < length:
                    chunk = await reader.read(min(length - pos, 256 * 1024))
                    if not chunk:
                        raise _Abort(None)
                    view[pos:pos + len(chunk)] = chunk
                    pos += len(chunk)
        except TimeoutError:
            raise _Abort(error_reply(408, None, f"body not received within "
                                                f"{timeout:g} s")) from None
        finally:
            view.release()
        return body  # type: ignore[return-value]  # a bytearray: bytes-like, parsed in place

    async def _send(self, writer: asyncio.StreamWriter, reply: Reply, close: bool) -> None:
        await write_reply(writer, reply, close, self.body_timeout)

    @staticmethod
    def _log(client: str, reply: Reply, seconds: float) -> None:
        log.info("%s %s %s -> HTTP %d, CIM status %d%s (%.1f ms)", client, reply.operation,
                 reply.classname, reply.status, reply.cim_status,
                 f": {reply.detail}" if reply.detail else "", seconds * 1000)
