"""WS-Management names: XML namespaces, actions, and resource URIs <-> (namespace, class).

Resource URIs (MS-WSMV §3.1.4.1.1): the Microsoft form
``http://schemas.microsoft.com/wbem/wsman/1/wmi/<namespace with />/<Class>`` (``*`` for a WQL
query over the namespace) and, for CIM_ classes, the DMTF form
``http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/<Class>`` with the namespace in the
``__cimnamespace`` selector.
"""

from __future__ import annotations

from dataclasses import dataclass

SOAP = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSEN = "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
WSMID = "http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd"
WSMID_ALT = "http://schemas.dmtf.org/wbem/wsman/identify/1/wsmanidentity.xsd"  # as pypsrp spells it
WSMANFAULT = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
CIM_COMMON = "http://schemas.dmtf.org/wbem/wscim/1/common"
CIMBINDING = "http://schemas.dmtf.org/wbem/wsman/1/cimbinding.xsd"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"

TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer/"
GET = TRANSFER + "Get"
PUT = TRANSFER + "Put"
CREATE = TRANSFER + "Create"
DELETE = TRANSFER + "Delete"
ENUMERATE = WSEN + "/Enumerate"
PULL = WSEN + "/Pull"
RELEASE = WSEN + "/Release"
FAULT_ACTION = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
ADDRESSING_FAULT = WSA + "/fault"

WQL = "http://schemas.microsoft.com/wbem/wsman/1/WQL"
SELECTOR_FILTER = "http://schemas.dmtf.org/wbem/wsman/1/wsman/SelectorFilter"
ASSOCIATION_FILTER = "http://schemas.dmtf.org/wbem/wsman/1/cimbinding/associationFilter"

WMI_PREFIX = "http://schemas.microsoft.com/wbem/wsman/1/wmi/"
DMTF_PREFIX = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/"
WMI_ALIAS = "wmi/"  # the winrm tool's short form
CIMNAMESPACE = "__cimnamespace"


@dataclass(frozen=True)
class Resource:
    """What a resource URI names: ``namespace`` (None: from __cimnamespace, DMTF form),
    ``classname`` (``*``: every class, for a WQL query), and whether it was the DMTF form."""

    namespace: str | None
    classname: str
    dmtf: bool = False


def resource(uri: str) -> Resource | None:
    """The namespace and class a resource URI names, or None for a URI of another kind."""
    uri = uri.strip()
    if uri.startswith(WMI_ALIAS):
        uri = WMI_PREFIX + uri[len(WMI_ALIAS):]
    low = uri.lower()
    if low.startswith(WMI_PREFIX):
        ns, _, cls = uri[len(WMI_PREFIX):].strip("/").rpartition("/")
        return Resource(ns, cls) if ns and cls else None
    if low.startswith(DMTF_PREFIX):
        cls = uri[len(DMTF_PREFIX):].strip("/")
        return Resource(None, cls, dmtf=True) if cls and "/" not in cls else None
    return None


def class_uri(namespace: str, classname: str) -> str:
    """The Microsoft resource URI of a class (the one our replies use)."""
    return f"{WMI_PREFIX}{namespace.strip('/')}/{classname}"
