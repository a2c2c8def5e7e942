"""One WS-Management request (``POST /wsman``, SOAP 1.2) -> one reply, on the HTTP layer of
``vsms.wbem.server`` (which authenticated the caller before reading the body).

Per request: the path and Content-Type (``application/soap+xml``; UTF-8, or UTF-16 with a BOM or
charset) → the envelope, parsed by the hardened reader (``vsms.wbem.xmltree``: no DTD, no
entities, bounded) → Identify (no Action, ``wsmid:Identify``) or the action: Get, Enumerate,
Pull, Release, an Invoke (``<ResourceURI>/<Method>``); Put, Create and Delete are refused with
the fault WMI gives. Every read runs through :meth:`Dispatcher.read` and every Invoke through
:meth:`Dispatcher.extrinsic`, the same role table, scope filter, caller and audit as CIM-XML.
Failures are SOAP faults (HTTP 500, ``vsms.wsman.soap``); a reply larger than the client's
``wsman:MaxEnvelopeSize`` is the ``wsman:EncodingLimit`` fault, one that took longer than its
``wsman:OperationTimeout`` (reads only: a method that ran is reported) ``wsman:TimedOut``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping

import pywbem

from vsms import __version__ as VERSION
from vsms.auth.anonymous import IdentifyAudit
from vsms.auth.basic import Principal
from vsms.auth.policy import Role
from vsms.providers.registry import Registry
from vsms.wbem.dispatch import Dispatcher, Outcome
from vsms.wbem.protocol import Reply, error_reply
from vsms.wbem.xmltree import XmlError, parse
from vsms.wsman import invoke, ops, soap
from vsms.wsman import names as n
from vsms.wsman.soap import Content, Fault, Request, q, timed_out
from vsms.wsman.target import instance_path, resolve

log = logging.getLogger(__name__)

_CT = 'application/soap+xml;charset=UTF-8'
MIN_ENVELOPE = 8192  # DSP0226: a MaxEnvelopeSize below this is refused
_UNSUPPORTED = {n.PUT: "ModifyInstance", n.CREATE: "CreateInstance", n.DELETE: "DeleteInstance"}


class _Failed(Exception):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.description)
        self.outcome = outcome


def _text(body: bytes, ctype: str) -> bytes:
    """The body as UTF-8 (UTF-16 bodies re-encoded)."""
    cs = re.search(r'charset\s*=\s*"?([\w-]+)', ctype, re.IGNORECASE)
    charset = cs.group(1).lower() if cs else ""
    raw = bytes(body)
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or charset.startswith("utf-16"):
        try:
            text = raw.decode("utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff")
                              else charset)
        except (UnicodeDecodeError, LookupError) as exc:
            raise Fault("w:EncodingLimit", f"the body is not valid {charset or 'UTF-16'}: "
                        f"{exc}", soap.WSMAN_ENCODING_LIMIT) from None
        text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text)
        return text.encode("utf-8")
    if charset and charset not in ("utf-8", "utf8"):
        raise Fault("w:EncodingLimit", f"charset {charset} is not supported: send UTF-8 or "
                    f"UTF-16", soap.WSMAN_ENCODING_LIMIT)
    return raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw


def _is_identify(req: Request) -> bool:
    """No wsa:Action and a wsmid:Identify body (either namespace spelling)."""
    return req.action is None and req.body is not None and req.body.name in (
        q(n.WSMID, "Identify"), q(n.WSMID_ALT, "Identify"))


class WsmanHandler:
    """Thread-safe; one instance serves every WS-Man listener."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.host = dispatcher.host
        audit = dispatcher.audit
        self.identify_audit = IdentifyAudit(audit) if audit is not None else None

    def close(self) -> None:
        """Nothing of its own to stop (the dispatcher is the CIM-XML handler's)."""

    def handle(self, method: str, headers: Mapping[str, str], body: bytes, *,
               principal: Principal | None = None, source: str = "") -> Reply:
        if principal is None:
            principal = Principal("", Role.ADMINISTRATOR, "none", source)
        path = headers.get(":path", "/wsman").split("?", 1)[0].rstrip("/").lower()
        if path != "/wsman":
            reply = error_reply(404, None, f"nothing is served at {path or '/'}; WS-Management "
                                           f"is served at POST /wsman")
            reply.status = 404
            return reply
        if method != "POST":
            return error_reply(405, None, f"method {method} is not supported; WS-Management "
                                          f"requests are sent with POST /wsman")
        ctype = headers.get("content-type", "")
        mtype = ctype.partition(";")[0].strip().lower()
        if mtype and mtype not in ("application/soap+xml", "text/xml", "application/xml"):
            return error_reply(415, None, f"Content-Type {ctype!r} is not supported; send "
                                          f"{_CT}")
        req: Request | None = None
        started = time.perf_counter()
        try:
            root = parse(_text(body, ctype), namespaces=True)
            req = soap.read_request(root)
            content, action, operation, classname = self._dispatch(req, principal)
        except XmlError as exc:
            return self._fault(Fault("w:SchemaValidationError", f"the request is not a valid "
                                     f"SOAP envelope: {exc}", soap.WSMAN_BAD_MESSAGE),
                               req, "-")
        except Fault as f:
            return self._fault(f, req, req.action if req and req.action else "-")
        except _Failed as failed:
            out = failed.outcome
            return self._fault(soap.from_cim(out.status, out.description), req,
                               req.action if req and req.action else "-")
        except Exception as exc:  # a bug of ours: a fault, logged; keep serving
            log.exception("internal error handling a WS-Man request")
            return self._fault(Fault("w:InternalError", f"internal error: "
                                     f"{type(exc).__name__}: {exc} (logged by the server)",
                                     soap.WSMAN_INTERNAL, soap.WBEM_E_FAILED, sender=False),
                               req, "-")
        return self._reply(req, content, action, operation, classname, started)

    def identify(self, headers: Mapping[str, str], body: bytes, *, source: str = ""
                 ) -> Reply | None:
        """The reply to a request sent without credentials if it is an Identify (audited,
        ``vsms.auth.anonymous``), else None: the HTTP layer then refuses it as any request
        without credentials (401). The body is read as :meth:`handle` reads it."""
        path = headers.get(":path", "/wsman").split("?", 1)[0].rstrip("/").lower()
        ctype = headers.get("content-type", "")
        mtype = ctype.partition(";")[0].strip().lower()
        if path != "/wsman" or mtype not in ("", "application/soap+xml", "text/xml",
                                             "application/xml"):
            return None
        started = time.perf_counter()
        try:
            req = soap.read_request(parse(_text(body, ctype), namespaces=True))
        except (XmlError, Fault):
            return None
        except Exception:  # a bug of ours: logged; the request is refused as unauthenticated
            log.exception("internal error reading a WS-Man request sent without credentials")
            return None
        if not _is_identify(req):
            return None
        if self.identify_audit is not None:
            self.identify_audit.record(source)
        return self._reply(req, self._identify(anonymous=True), None, "Identify", "-", started)

    def _reply(self, req: Request, content: Content, action: str | None, operation: str,
               classname: str, started: float) -> Reply:
        if action is None:  # Identify: no SOAP header
            pieces: tuple[bytes, ...] = ((f'<s:Envelope xmlns:s="{n.SOAP}"><s:Header/><s:Body>'
                                          f"{content}</s:Body></s:Envelope>").encode(),)
        else:
            pieces = soap.envelope_bytes(action, req.message_id, content)
        size = sum(len(p) for p in pieces)
        if req.max_envelope is not None and req.max_envelope < MIN_ENVELOPE:
            return self._fault(Fault("w:EncodingLimit", f"MaxEnvelopeSize {req.max_envelope} "
                                     f"is below the minimum of {MIN_ENVELOPE} bytes",
                                     soap.WSMAN_ENCODING_LIMIT,
                                     detail="http://schemas.dmtf.org/wbem/wsman/1/wsman/"
                                            "faultDetail/MinimumEnvelopeLimit"),
                               req, operation)
        if req.max_envelope is not None and size > req.max_envelope:
            return self._fault(Fault("w:EncodingLimit", f"the reply ({size} bytes) is "
                                     f"larger than MaxEnvelopeSize {req.max_envelope}; raise "
                                     f"MaxEnvelopeSize or ask for fewer items "
                                     f"(wsman:MaxElements)", soap.WSMAN_ENCODING_LIMIT,
                                     detail="http://schemas.dmtf.org/wbem/wsman/1/wsman/"
                                            "faultDetail/MaxEnvelopeSize"),
                               req, operation)
        micros = int((time.perf_counter() - started) * 1e6)
        return Reply(200, [("Content-Type", _CT), ("WBEMServerResponseTime", str(micros))],
                     pieces[0], operation=operation, classname=classname, more=pieces[1:])

    def _fault(self, f: Fault, req: Request | None, operation: str) -> Reply:
        xml = soap.fault_envelope(f, req.message_id if req else None, f"{self.host}")
        return Reply(500, [("Content-Type", _CT)], xml.encode("utf-8"),
                     operation=f"WS-Man {operation.rpartition('/')[2]}", classname="-",
                     cim_status=f.status, detail=str(f))

    # ------------------------------------------------------------------ operations
    def _read(self, operation: str, principal: Principal, run: Callable[[Registry], Content]
              ) -> Content:
        result: list[Content] = []
        faults: list[Fault] = []

        def go(registry: Registry) -> Outcome:
            try:
                result.append(run(registry))
            except Fault as f:  # already a WS-Man fault: passed through as it is
                faults.append(f)
            return Outcome()

        outcome = self.dispatcher.read(operation, principal, go)
        if faults:
            raise faults[0]
        if outcome.status:
            raise _Failed(outcome)
        return result[0]

    def _dispatch(self, req: Request, principal: Principal
                  ) -> tuple[Content, str | None, str, str]:
        """(Body content, reply action (None: Identify), operation, class for the log)."""
        body = req.body
        if _is_identify(req):
            return self._identify(), None, "Identify", "-"
        if not req.action:
            raise Fault("a:MessageInformationHeaderRequired", "the request has no wsa:Action "
                        "header", soap.WSMAN_BAD_MESSAGE)
        if not req.message_id:
            raise Fault("a:MessageInformationHeaderRequired", "the request has no "
                        "wsa:MessageID header", soap.WSMAN_BAD_MESSAGE)
        action = req.action
        started = time.monotonic()
        user = principal.user or None
        contexts = self.dispatcher.contexts
        if action == n.GET:
            content = self._read("GetInstance", principal, lambda r: ops.get(r, req))
            op = "Get"
        elif action == n.ENUMERATE:
            if body is None or body.name != q(n.WSEN, "Enumerate"):
                raise Fault("w:SchemaValidationError", "an Enumerate request needs a "
                            "wsen:Enumerate body", soap.WSMAN_BAD_MESSAGE)
            box: list[str] = []

            def enum(r: Registry) -> Content:
                operation, content = ops.enumerate_(r, contexts, req, user, started)
                box.append(operation)
                return content
            content = self._read(self._enum_role(req), principal, enum)
            op = "Enumerate"
        elif action == n.PULL:
            content = self._read("PullInstancesWithPath", principal,
                                 lambda r: ops.pull(r, contexts, req, user, started))
            op = "Pull"
        elif action == n.RELEASE:
            content = self._read("CloseEnumeration", principal,
                                 lambda r: ops.release(r, contexts, req, user))
            op = "Release"
        elif action in _UNSUPPORTED:
            self._refuse_transfer(req, principal, _UNSUPPORTED[action])
            raise AssertionError("unreachable")
        else:
            return self._invoke(req, principal)
        # a Pull honours the OperationTimeout itself (ops.pull): the items it took from the
        # context are in ``content`` and must reach the client
        if req.timeout is not None and op != "Pull" and time.monotonic() - started > req.timeout:
            raise timed_out(op, req.timeout)
        return content, action + "Response", op, self._classname(req)

    @staticmethod
    def _enum_role(req: Request) -> str:
        return "ExecQuery" if req.body is not None and any(
            k.name == q(n.WSMAN, "Filter") for k in req.body.kids) else "EnumerateInstances"

    @staticmethod
    def _classname(req: Request) -> str:
        res = n.resource(req.resource_uri or "")
        return res.classname if res is not None else "-"

    @staticmethod
    def _identify(anonymous: bool = False) -> str:
        """Without credentials the OS is not named (as WinRM answers: "OS: 0.0.0")."""
        return (f'<wsmid:IdentifyResponse xmlns:wsmid="{n.WSMID}">'
                f"<wsmid:ProtocolVersion>http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
                f"</wsmid:ProtocolVersion><wsmid:ProductVendor>vsms</wsmid:ProductVendor>"
                f"<wsmid:ProductVersion>OS: {'0.0.0' if anonymous else 'Linux'} SP: 0.0 "
                f"Stack: {VERSION}</wsmid:ProductVersion></wsmid:IdentifyResponse>")

    def _refuse_transfer(self, req: Request, principal: Principal, operation: str) -> None:
        def check(registry: Registry) -> str:
            ns, cls = resolve(registry, req.resource_uri, req.selectors)
            assert cls is not None
            raise Fault("a:ActionNotSupported", f"{operation.replace('Instance', '')} is not "
                        f"supported for {cls.classname}: its instances are changed through the "
                        f"methods of Msvm_VirtualSystemManagementService",
                        soap.WSMAN_ACTION_NOT_SUPPORTED, soap.WBEM_E_NOT_SUPPORTED,
                        pywbem.CIM_ERR_NOT_SUPPORTED)
        self._read(operation, principal, check)

    def _invoke(self, req: Request, principal: Principal) -> tuple[str, str, str, str]:
        action = req.action or ""
        uri = req.resource_uri or ""
        if not uri:
            raise Fault("a:DestinationUnreachable", "the request has no wsman:ResourceURI "
                        "header", soap.WSMAN_INVALID_RESOURCE_URI)
        if not action.lower().startswith(uri.rstrip("/").lower() + "/") or n.resource(
                uri) is None:
            raise Fault("a:ActionNotSupported", f"action {action} is not supported: use a "
                        f"WS-Transfer or WS-Enumeration action, or <ResourceURI>/<Method> to "
                        f"invoke a method", soap.WSMAN_ACTION_NOT_SUPPORTED,
                        soap.WBEM_E_NOT_SUPPORTED, pywbem.CIM_ERR_NOT_SUPPORTED)
        method = action[len(uri.rstrip("/")) + 1:]
        # the target is found as the caller sees the registry (scopes), like a Get
        found: list[tuple[str, pywbem.CIMClass, pywbem.CIMInstanceName | pywbem.CIMClassName]]
        found = []

        def locate(r: Registry) -> str:
            ns, cls = resolve(r, uri, req.selectors)
            assert cls is not None
            if not cls.methods.get(method) and method.lower() not in {
                    m.lower() for m in cls.methods}:
                raise Fault("a:ActionNotSupported", f"class {cls.classname} has no method "
                            f"{method}", soap.WSMAN_ACTION_NOT_SUPPORTED,
                            soap.WBEM_E_NOT_SUPPORTED, pywbem.CIM_ERR_METHOD_NOT_FOUND)
            sels = {k: v for k, v in req.selectors.items() if k.lower() != n.CIMNAMESPACE}
            target: pywbem.CIMInstanceName | pywbem.CIMClassName
            target = instance_path(r, ns, cls, req.selectors) if sels else \
                pywbem.CIMClassName(cls.classname, namespace=ns)
            found.append((ns, cls, target))
            return ""
        self._read("GetInstance", principal, locate)
        ns, cls, target = found[0]
        name = next((m for m in cls.methods if m.lower() == method.lower()), method)
        call = invoke.read_call(req.body, uri, name, ns, target)
        outcome = self.dispatcher.extrinsic(
            call, principal, render=lambda ran: invoke.output(ran, name, uri))
        if outcome.status:
            raise _Failed(outcome)
        return outcome.body, action + "Response", name, cls.classname
