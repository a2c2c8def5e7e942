"""A 320x240 thumbnail inside GetSummaryInformation over the wire: pywbem reads the embedded
instance (a CDATA section, vsms.wbem.encode.embedded_text) back to the provider's very bytes
(escaped, the same answer stalled pywbem's parser for minutes)."""

from __future__ import annotations

import pywbem

from tests.summary.conftest import Rig, u32, vssd
from vsms.cim import names
from vsms.cim.enums import ReturnCode


def test_the_largest_thumbnail_arrives_whole_over_cim_xml(rig: Rig) -> None:
    # a deadline that fails the test where the escaped answer would stall the parser
    conn = pywbem.WBEMConnection(rig.conn.url, default_namespace=names.NAMESPACE, timeout=60)
    target = [vssd(rig.run.guid), vssd(rig.off.guid)]
    rig.service.host.pause(rig.run.guid)  # a still screen: two pictures of it are equal
    try:
        rv, out = conn.InvokeMethod("GetSummaryInformation", rig.vsms,
                                    SettingData=target, RequestedInformation=u32(0, 7))
        assert rv == ReturnCode.COMPLETED
        rv, local = rig.service.registry.invoke_method(
            names.NAMESPACE, rig.vsms, "GetSummaryInformation",
            {"SettingData": target, "RequestedInformation": [0, 7]})
        assert rv == ReturnCode.COMPLETED
    finally:
        rig.service.host.resume(rig.run.guid)
        conn.close()
    wire = out["SummaryInformation"]
    assert [s["Name"] for s in wire] == [rig.run.guid.upper(), rig.off.guid.upper()]
    image = wire[0]["ThumbnailImage"]
    assert len(image) == 320 * 240 * 2 and wire[1]["ThumbnailImage"] is None
    assert len(set(image)) > 1  # a picture, not a blank
    assert bytes(image) == bytes(local["SummaryInformation"][0]["ThumbnailImage"])
