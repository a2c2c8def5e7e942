"""One CIM-XML request over HTTP (DSP0200 chapter 7), independent of the socket layer.

:meth:`CimXmlHandler.handle` checks the method and the CIM headers, parses the body, checks the
headers against it, dispatches, and returns the complete :class:`Reply`. Protocol errors are
HTTP 4xx/5xx, with the DSP0200 ``CIMError`` header where one applies and the reason in the body
and (URL-encoded) in ``PGErrorDetail``, which pywbem shows; CIM errors are HTTP 200 with an
ERROR element.

Authentication is the HTTP layer's (``vsms.wbem.server``: before the body is even read); the
caller's :class:`Principal` comes with the request and goes to the dispatcher, which authorizes
(and audits) the call. Without one (the in-process API, authentication off), the caller is an
administrator.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from vsms.auth.audit import AuditLog
from vsms.auth.basic import Principal
from vsms.auth.policy import Role
from vsms.providers.registry import Registry
from vsms.wbem.contexts import EnumerationContexts
from vsms.wbem.decode import IMethodCall, ProtocolError, message
from vsms.wbem.dispatch import Dispatcher, Outcome
from vsms.wbem.encode import esc_attr
from vsms.wbem.xmltree import XmlError, parse

log = logging.getLogger(__name__)

_XML_HEAD = '<?xml version="1.0" encoding="utf-8" ?>\n'
_MAN = re.compile(r'^\s*"?http://www\.dmtf\.org/cim/mapping/http/v1\.0"?\s*;\s*ns\s*=\s*(\d+)',
                  re.IGNORECASE)
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 405: "Method Not Allowed",
            408: "Request Timeout", 411: "Length Required", 413: "Payload Too Large",
            429: "Too Many Requests",
            431: "Request Header Fields Too Large", 500: "Internal Server Error",
            501: "Not Implemented", 503: "Service Unavailable", 510: "Not Extended"}


def reason(status: int) -> str:
    return _REASONS.get(status, "Error")


@dataclass
class Reply:
    """What goes back: status, headers, body; the rest only feeds the request log."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    operation: str = "-"
    classname: str = "-"
    cim_status: int = 0
    detail: str = ""
    # more body after ``body``, written as it is: kept texts (vsms.wsman.ops.BATCHES) are
    # sent without being copied into one buffer first
    more: tuple[bytes, ...] = ()

    def size(self) -> int:
        return len(self.body) + sum(len(m) for m in self.more)

    def data(self) -> bytes:
        """The whole body in one piece (a copy when there is ``more``)."""
        return b"".join((self.body, *self.more)) if self.more else self.body


def error_reply(status: int, cimerror: str | None, text: str, operation: str = "-") -> Reply:
    headers = [("Content-Type", "text/plain; charset=utf-8")]
    if cimerror:
        headers.append(("CIMError", cimerror))
    headers.append(("PGErrorDetail", quote(text[:1000], safe=" ")))
    if status == 405:
        headers.append(("Allow", "POST, M-POST"))
    return Reply(status, headers, (text + "\n").encode("utf-8"), operation=operation, detail=text)


def _norm_ns(ns: str) -> str:
    return ns.replace("\\", "/").strip("/").lower()


class CimXmlHandler:
    """Turns one HTTP request into one reply. Thread-safe; one instance serves all requests."""

    def __init__(self, registry: Registry, host_name: str | None = None,
                 contexts: EnumerationContexts | None = None, *,
                 audit: AuditLog | None = None) -> None:
        self.registry = registry
        self.host = host_name or registry.host
        self.dispatcher = Dispatcher(registry, self.host, contexts, audit=audit)

    def close(self) -> None:
        self.dispatcher.close()

    def handle(self, method: str, headers: Mapping[str, str], body: bytes, *,
               principal: Principal | None = None, source: str = "") -> Reply:
        """``headers``: names in lower case; ``principal``: the authenticated caller (None: an
        administrator, authentication off); ``source``: the client's IP address."""
        started = time.perf_counter()
        if principal is None:
            principal = Principal("", Role.ADMINISTRATOR, "none", source)
        if method not in ("POST", "M-POST"):
            return error_reply(405, None, f"method {method} is not supported; CIM-XML requests "
                                          f"are sent with POST")
        prefix = ""
        if method == "M-POST":
            m = _MAN.match(headers.get("man", ""))
            if m is None:
                return error_reply(510, None, "M-POST needs a Man header naming "
                                              "http://www.dmtf.org/cim/mapping/http/v1.0;ns=NN")
            prefix = f"{m.group(1)}-"
        op = unquote(headers.get(f"{prefix}cimmethod", "-") or "-")
        try:
            reply = self._handle(headers, body, prefix, principal)
        except ProtocolError as exc:
            reply = error_reply(exc.status, exc.cimerror, exc.message, op)
        except Exception as exc:  # a bug of ours: answer, log, keep serving
            log.exception("internal error handling %s", op)
            reply = error_reply(500, None, f"internal server error: {type(exc).__name__}: {exc}",
                                op)
        if prefix and reply.status == 200:
            reply.headers = [(f"{prefix}{k}" if k == "CIMOperation" else k, v)
                             for k, v in reply.headers]
            reply.headers.append(("Ext", ""))
        if reply.status == 200:
            micros = int((time.perf_counter() - started) * 1e6)
            reply.headers.append(("WBEMServerResponseTime", str(micros)))
        return reply

    def _handle(self, headers: Mapping[str, str], body: bytes, prefix: str,
                principal: Principal) -> Reply:
        ctype = headers.get("content-type", "")
        if ctype:
            mtype, _, params = ctype.partition(";")
            if mtype.strip().lower() not in ("application/xml", "text/xml"):
                raise ProtocolError(400, None, f"Content-Type {ctype!r} is not supported; "
                                               f"send application/xml; charset=\"utf-8\"")
            cs = re.search(r'charset\s*=\s*"?([\w-]+)', params, re.IGNORECASE)
            if cs and cs.group(1).lower() not in ("utf-8", "utf8"):
                raise ProtocolError(400, None, f"charset {cs.group(1)} is not supported; "
                                               f"send utf-8")
        operation = headers.get(f"{prefix}cimoperation")
        if operation is None or operation.strip().lower() != "methodcall":
            raise ProtocolError(400, "unsupported-operation",
                                f"the CIMOperation header must be MethodCall, not {operation!r}")
        if f"{prefix}cimbatch" in headers:
            raise ProtocolError(501, "multiple-requests-unsupported",
                                "batched (multiple) requests are not supported")
        version = headers.get(f"{prefix}cimprotocolversion")
        if version is not None and not version.strip().startswith("1."):
            raise ProtocolError(501, "unsupported-protocol-version",
                                f"CIMProtocolVersion {version!r} is not supported (use 1.0)")
        hmethod = unquote(headers.get(f"{prefix}cimmethod", "")).strip()
        hobject = unquote(headers.get(f"{prefix}cimobject", "")).strip()
        if not hmethod or not hobject:
            raise ProtocolError(400, "header-mismatch",
                                "the CIMMethod and CIMObject headers are required")
        try:
            root = parse(body)
        except XmlError as exc:
            raise ProtocolError(400, "request-not-well-formed", str(exc)) from None
        msg = message(root)
        call = msg.call
        if hmethod.lower() != call.name.lower():
            raise ProtocolError(400, "header-mismatch", f"CIMMethod header {hmethod!r} does not "
                                                        f"match the request's {call.name!r}")
        self._check_object(hobject, call)
        if isinstance(call, IMethodCall):
            outcome = self.dispatcher.intrinsic(call, principal)
            tag = "IMETHODRESPONSE"
        else:
            outcome = self.dispatcher.extrinsic(call, principal)
            tag = "METHODRESPONSE"
        xml = self._envelope(msg.id, tag, call.name, outcome)
        return Reply(200, [("Content-Type", 'application/xml; charset="utf-8"'),
                           ("CIMOperation", "MethodResponse")],
                     xml.encode("utf-8"), operation=call.name,
                     classname=str(outcome.classname or getattr(
                         getattr(call, "target", None), "classname", "-")),
                     cim_status=outcome.status,
                     detail=outcome.description if outcome.status else
                     ("" if outcome.count is None else f"{outcome.count} objects"))

    @staticmethod
    def _check_object(hobject: str, call: object) -> None:
        if isinstance(call, IMethodCall):
            if _norm_ns(hobject) != _norm_ns(call.namespace):
                raise ProtocolError(400, "header-mismatch",
                                    f"CIMObject header {hobject!r} does not match the request's "
                                    f"namespace {call.namespace!r}")
            return
        ns, sep, rest = hobject.partition(":")
        target = getattr(call, "target", None)
        cls = rest.split(".", 1)[0].strip()
        if target is not None and (not sep or _norm_ns(ns) != _norm_ns(str(target.namespace))
                                   or cls.lower() != target.classname.lower()):
            raise ProtocolError(400, "header-mismatch",
                                f"CIMObject header {hobject!r} does not match the request's "
                                f"object {target.namespace}:{target.classname}")

    @staticmethod
    def _envelope(mid: str, tag: str, name: str, outcome: Outcome) -> str:
        if outcome.status:
            inner = (f'<ERROR CODE="{outcome.status}" '
                     f'DESCRIPTION="{esc_attr(outcome.description)}"></ERROR>')
        else:
            inner = outcome.body
        return (f'{_XML_HEAD}<CIM CIMVERSION="2.0" DTDVERSION="2.0">'
                f'<MESSAGE ID="{esc_attr(mid)}" PROTOCOLVERSION="1.0"><SIMPLERSP>'
                f'<{tag} NAME="{esc_attr(name)}">{inner}</{tag}>'
                f"</SIMPLERSP></MESSAGE></CIM>")
