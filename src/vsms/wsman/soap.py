"""SOAP 1.2 envelopes of WS-Management: the request as read (:class:`Request`), the reply and
fault envelopes as written, and :class:`Fault` with the WMI detail (MS-WSMV §2.2.4.43, §3.1.4.1.21).

Faults carry a SOAP code (Sender/Receiver), a WS-Man subcode, the reason, the Win32/WMI code in
``WSManFault`` (what pypsrp reports as the fault's code) and an ``MSFT_WmiError`` with
``error_Code`` and the CIM status (what WMI clients test). :func:`from_cim` maps a CIM status
(the dispatcher's outcome) to its fault.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

import pywbem

from vsms.wbem.encode import esc, esc_attr
from vsms.wbem.xmltree import Node
from vsms.wsman import names as n

# Win32 / WMI codes
WSMAN_INVALID_RESOURCE_URI = 2150858778  # also what WMI clients read as "namespace missing"
WSMAN_INTERNAL = 2150858752
WSMAN_INVALID_SELECTORS = 2150858843
WSMAN_TIMED_OUT = 2150858793
WSMAN_ACTION_NOT_SUPPORTED = 2150858771
WSMAN_INVALID_CONTEXT = 2150858776
WSMAN_ENCODING_LIMIT = 2150858798
WSMAN_CANNOT_PROCESS_FILTER = 2150858808
WSMAN_BAD_MESSAGE = 2150858817
ACCESS_DENIED = 5
WBEM_E_FAILED = 2147749889
WBEM_E_NOT_FOUND = 2147749890
WBEM_E_ACCESS_DENIED = 2147749891
WBEM_E_INVALID_PARAMETER = 2147749896
WBEM_E_NOT_SUPPORTED = 2147749900
WBEM_E_INVALID_CLASS = 2147749904
WBEM_E_INVALID_QUERY = 2147749911
WBEM_E_QUOTA = 2147749932

ENVELOPE_OPEN = (
    f'<s:Envelope xmlns:s="{n.SOAP}" xmlns:a="{n.WSA}" xmlns:w="{n.WSMAN}" '
    f'xmlns:n="{n.WSEN}" xmlns:xsi="{n.XSI}" xmlns:cim="{n.CIM_COMMON}">')


def q(ns: str, local: str) -> str:
    """A name as the namespace-aware parser gives it."""
    return f"{ns} {local}"


@dataclass
class Fault(Exception):
    """A WS-Management fault. ``wmi_code``: WSManFault Code; ``error_code``: MSFT_WmiError
    error_Code (None: no MSFT_WmiError); ``status``: its CIM status code."""

    subcode: str
    reason: str
    wmi_code: int = WSMAN_INTERNAL
    error_code: int | None = None
    status: int = pywbem.CIM_ERR_FAILED
    sender: bool = True
    detail: str | None = None  # wsman:FaultDetail URI

    def __str__(self) -> str:
        return f"{self.subcode}: {self.reason}"


def from_cim(status: int, description: str) -> Fault:
    """The fault WMI gives for a CIM status (the dispatcher's outcome)."""
    if status == pywbem.CIM_ERR_INVALID_NAMESPACE:
        return Fault("a:DestinationUnreachable", description, WSMAN_INVALID_RESOURCE_URI,
                     WSMAN_INVALID_RESOURCE_URI, status)
    if status == pywbem.CIM_ERR_INVALID_CLASS:
        return Fault("a:DestinationUnreachable", description, WSMAN_INVALID_RESOURCE_URI,
                     WBEM_E_INVALID_CLASS, status)
    if status == pywbem.CIM_ERR_NOT_FOUND:
        return Fault("a:DestinationUnreachable", description, WSMAN_INTERNAL, WBEM_E_NOT_FOUND,
                     status, detail="http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/"
                                    "ResourceNotFound")
    if status == pywbem.CIM_ERR_ACCESS_DENIED:
        return Fault("w:AccessDenied", description, ACCESS_DENIED, WBEM_E_ACCESS_DENIED, status)
    if status in (pywbem.CIM_ERR_INVALID_QUERY, pywbem.CIM_ERR_QUERY_LANGUAGE_NOT_SUPPORTED):
        return Fault("w:CannotProcessFilter", description, WSMAN_CANNOT_PROCESS_FILTER,
                     WBEM_E_INVALID_QUERY, status)
    if status in (pywbem.CIM_ERR_NOT_SUPPORTED, pywbem.CIM_ERR_METHOD_NOT_FOUND,
                  pywbem.CIM_ERR_METHOD_NOT_AVAILABLE):
        return Fault("a:ActionNotSupported", description, WSMAN_ACTION_NOT_SUPPORTED,
                     WBEM_E_NOT_SUPPORTED, status)
    if status == pywbem.CIM_ERR_INVALID_PARAMETER:
        return Fault("w:InvalidParameter", description, WSMAN_INTERNAL,
                     WBEM_E_INVALID_PARAMETER, status)
    if status == pywbem.CIM_ERR_INVALID_ENUMERATION_CONTEXT:
        return Fault("n:InvalidEnumerationContext", description, WSMAN_INVALID_CONTEXT, None,
                     status, sender=False)
    if status == pywbem.CIM_ERR_SERVER_LIMITS_EXCEEDED:
        return Fault("w:QuotaLimit", description, WSMAN_INTERNAL, WBEM_E_QUOTA, status,
                     sender=False)
    return Fault("w:InternalError", description, WSMAN_INTERNAL, WBEM_E_FAILED, status,
                 sender=False)


def timed_out(operation: str, seconds: float) -> Fault:
    return Fault("w:TimedOut", f"the {operation} took longer than the OperationTimeout of "
                 f"{seconds:g} s", WSMAN_TIMED_OUT, sender=False)


def pull_timed_out(seconds: float) -> Fault:
    return Fault("w:TimedOut", f"no item could be written within the wsen:MaxTime of "
                 f"{seconds:g} s; the enumeration context is still valid: pull again, with a "
                 f"longer MaxTime", WSMAN_TIMED_OUT, sender=False)


# ---------------------------------------------------------------------- the request
@dataclass
class Request:
    action: str | None
    message_id: str | None
    resource_uri: str | None
    selectors: dict[str, Node] = field(default_factory=dict)  # name as sent -> Selector node
    options: dict[str, str] = field(default_factory=dict)  # lower-case name -> value
    max_envelope: int | None = None
    timeout: float | None = None
    body: Node | None = None  # the first child of s:Body


_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def duration(text: str) -> float:
    """Seconds of an xs:duration without years and months (``PT20S``, ``P0DT0H1M40.5S``)."""
    m = _DURATION.match(text.strip())
    if m is None or text.strip() in ("P", "PT"):
        raise Fault("w:SchemaValidationError",
                    f"{text!r} is not an xs:duration such as PT60S", WSMAN_BAD_MESSAGE)
    d, h, mi, s = m.groups()
    return int(d or 0) * 86400 + int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)


def read_request(root: Node) -> Request:
    """The header fields and the body of a parsed envelope."""
    if root.name != q(n.SOAP, "Envelope"):
        raise Fault("w:SchemaValidationError", f"the document is not a SOAP 1.2 envelope "
                    f"(root element {root.name.split(' ')[-1]!r} in namespace "
                    f"{root.name.rpartition(' ')[0] or 'none'!r}; expected Envelope in {n.SOAP})",
                    WSMAN_BAD_MESSAGE)
    header = next((k for k in root.kids if k.name == q(n.SOAP, "Header")), None)
    body = next((k for k in root.kids if k.name == q(n.SOAP, "Body")), None)
    if body is None:
        raise Fault("w:SchemaValidationError", "the SOAP envelope has no Body",
                    WSMAN_BAD_MESSAGE)
    req = Request(None, None, None, body=body.kids[0] if body.kids else None)
    for h in header.kids if header is not None else []:
        name = h.name
        if name == q(n.WSA, "Action"):
            req.action = h.text.strip()
        elif name == q(n.WSA, "MessageID"):
            req.message_id = h.text.strip()
        elif name == q(n.WSMAN, "ResourceURI"):
            req.resource_uri = h.text.strip()
        elif name == q(n.WSMAN, "SelectorSet"):
            for s in h.kids:
                sel = s.attr("Name")
                if s.name == q(n.WSMAN, "Selector") and sel:
                    req.selectors[sel] = s
        elif name == q(n.WSMAN, "OptionSet"):
            for o in h.kids:
                opt = o.attr("Name")
                if opt:
                    req.options[opt.lower()] = o.text.strip()
        elif name == q(n.WSMAN, "MaxEnvelopeSize"):
            try:
                req.max_envelope = int(h.text.strip())
            except ValueError:
                raise Fault("w:EncodingLimit", f"MaxEnvelopeSize {h.text.strip()!r} is not a "
                            f"number of bytes", WSMAN_ENCODING_LIMIT) from None
        elif name == q(n.WSMAN, "OperationTimeout"):
            req.timeout = duration(h.text)
    return req


# ---------------------------------------------------------------------- the reply
@dataclass(frozen=True)
class Spliced:
    """Body content made of text and of parts already encoded as UTF-8 (kept texts of
    whole batches, :data:`vsms.wsman.ops.BATCHES`): the reply is joined from them in one copy
    instead of being written, joined and encoded again."""

    parts: tuple[str | bytes, ...]


Content = str | Spliced  # what an operation answers: the content of the reply's s:Body


def _envelope_ends(action: str, relates_to: str | None) -> tuple[str, str]:
    header = (f'<s:Header><a:To>{n.ANONYMOUS}</a:To>'
              f'<a:Action s:mustUnderstand="true">{esc(action)}</a:Action>'
              f"<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID>")
    if relates_to:
        header += f"<a:RelatesTo>{esc(relates_to)}</a:RelatesTo>"
    return f"{ENVELOPE_OPEN}{header}</s:Header><s:Body>", "</s:Body></s:Envelope>"


def envelope(action: str, relates_to: str | None, body: str) -> str:
    start, end = _envelope_ends(action, relates_to)
    return f"{start}{body}{end}"


def envelope_bytes(action: str, relates_to: str | None, body: Content) -> tuple[bytes, ...]:
    """The reply envelope as UTF-8, in pieces: one, or the encoded parts of a
    :class:`Spliced` body between the envelope's ends (written one after the other, never
    joined: the reply's body and its ``more``)."""
    if isinstance(body, str):
        return (envelope(action, relates_to, body).encode("utf-8"),)
    start, end = _envelope_ends(action, relates_to)
    return (start.encode("utf-8"),
            *(p.encode("utf-8") if isinstance(p, str) else p for p in body.parts),
            end.encode("utf-8"))


def fault_body(f: Fault, machine: str) -> str:
    detail = f"<w:FaultDetail>{esc(f.detail)}</w:FaultDetail>" if f.detail else ""
    reason = esc(f.reason)
    wmi = ""
    if f.error_code is not None:
        uri = n.class_uri("root/cimv2", "MSFT_WmiError")
        wmi = (f'<p:MSFT_WmiError b:IsCIM_Error="true" xmlns:b="{n.CIMBINDING}" '
               f'xmlns:p="{uri}" xsi:type="p:MSFT_WmiError_Type">'
               f'<p:CIMStatusCode xsi:type="cim:cimUnsignedInt">{f.status}</p:CIMStatusCode>'
               f'<p:CIMStatusCodeDescription xsi:nil="true"/>'
               f'<p:Message xsi:type="cim:cimString">{reason}</p:Message>'
               f'<p:MessageID xsi:type="cim:cimString">HyperVWmi{f.status}</p:MessageID>'
               f'<p:error_Category xsi:type="cim:cimUnsignedShort">0</p:error_Category>'
               f'<p:error_Code xsi:type="cim:cimUnsignedInt">{f.error_code}</p:error_Code>'
               f'<p:error_Type xsi:type="cim:cimString">HRESULT</p:error_Type>'
               f'<p:error_WindowsErrorMessage xsi:type="cim:cimString">{reason}'
               f"</p:error_WindowsErrorMessage></p:MSFT_WmiError>")
    return (f'<s:Fault><s:Code><s:Value>{"s:Sender" if f.sender else "s:Receiver"}</s:Value>'
            f"<s:Subcode><s:Value>{f.subcode}</s:Value></s:Subcode></s:Code>"
            f'<s:Reason><s:Text xml:lang="en-US">{reason}</s:Text></s:Reason>'
            f"<s:Detail>{detail}"
            f'<f:WSManFault xmlns:f="{n.WSMANFAULT}" Code="{f.wmi_code}" '
            f'Machine="{esc_attr(machine)}"><f:Message>{reason}</f:Message></f:WSManFault>'
            f"{wmi}</s:Detail></s:Fault>")


def fault_envelope(f: Fault, relates_to: str | None, machine: str) -> str:
    action = n.ADDRESSING_FAULT if f.subcode.startswith("a:") else n.FAULT_ACTION
    return envelope(action, relates_to, fault_body(f, machine))
