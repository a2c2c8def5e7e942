"""Merging a running VM's disk images with libvirt block commit (virDomainBlockCommit).

A merge of ``top`` (one of our overlays) into ``base`` (its backing file) while QEMU has the
chain open: when ``top`` is the image the VM writes (the active layer) it is an *active*
commit, which copies top's clusters into base and then mirrors new writes until it is
*pivoted*: from then on the VM writes base and top is out of the chain; otherwise it is an
*intermediate* commit, which copies top's clusters into base and rewrites the backing file of
the image above top to base, after which QEMU drops top from the chain by itself. The guest's
view never changes meanwhile, and base's own view only gains clusters that top hides anyway.

The job runs in QEMU, not here: if vsms dies meanwhile, an intermediate commit goes on to its
end, an active one goes on mirroring until someone pivots or cancels it. :func:`settle` is what
recovery does with one it finds (cancel it: the chain stays as it was, which is consistent) and
tells whether top is still in the chain (no: the commit had completed).
"""

from __future__ import annotations

import logging
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import libvirt

from vsms.errors import OperationFailed

log = logging.getLogger(__name__)

POLL = 0.1  # seconds between two looks at the job
READY_WAIT = 600.0  # an active commit that never becomes ready is cancelled after this


def _files(disk: ET.Element) -> list[str]:
    """The files of a ``<disk>`` element's chain, top first (libvirt lists backingStore)."""
    out: list[str] = []
    node: ET.Element | None = disk
    while node is not None:
        source = node.find("source")
        path = source.get("file") if source is not None else None
        if not path:
            break
        out.append(os.path.normpath(path))
        node = node.find("backingStore")
    return out


def disk_chain(domain_xml: str, image: str) -> tuple[str, list[str]] | None:
    """(target dev, chain top first) of the disk whose chain holds ``image``; None: none."""
    want = os.path.normpath(image)
    for disk in ET.fromstring(domain_xml).findall("devices/disk"):
        target = disk.find("target")
        chain = _files(disk)
        if target is not None and target.get("dev") and want in chain:
            return str(target.get("dev")), chain
    return None


def commit(dom: Any, top: str, base: str, progress: Callable[[float], None],
           label: str) -> None:
    """Merge ``top`` into ``base`` in the running domain ``dom`` (see the module text),
    calling ``progress`` with the fraction done; OperationFailed (the job cancelled, the chain
    as it was) when libvirt refuses it or it fails."""
    found = disk_chain(dom.XMLDesc(0), top)
    if found is None:
        raise OperationFailed(f"{label} does not have {top} open: nothing to commit live")
    dev, chain = found
    active = chain[0] == os.path.normpath(top)
    flags = libvirt.VIR_DOMAIN_BLOCK_COMMIT_ACTIVE if active else 0
    try:
        dom.blockCommit(dev, base, None if active else top, 0, flags)
    except libvirt.libvirtError as exc:
        raise OperationFailed(f"libvirt refused to merge {top} into {base} while {label} "
                              f"runs: {exc.get_error_message()}") from exc
    try:
        _follow(dom, dev, active, progress)
    except BaseException:
        _cancel(dom, dev)
        raise
    after = disk_chain(dom.XMLDesc(0), base)
    if after is None or os.path.normpath(top) in after[1]:
        raise OperationFailed(f"the merge of {top} into {base} in {label} did not complete "
                              "(QEMU ended the block job early); the images are unchanged")


def _follow(dom: Any, dev: str, active: bool, progress: Callable[[float], None]) -> None:
    deadline = time.monotonic() + READY_WAIT
    while True:
        info = dom.blockJobInfo(dev, 0)
        if not info:  # an intermediate commit ends by itself (the caller checks the chain)
            return
        end, cur = int(info.get("end", 0)), int(info.get("cur", 0))
        if end:
            progress(min(cur / end, 1.0))
        if active and end and cur == end:
            try:
                dom.blockJobAbort(dev, libvirt.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT)
                return
            except libvirt.libvirtError as exc:  # not ready yet: look again
                log.debug("pivot of %s not possible yet: %s", dev, exc.get_error_message())
        if time.monotonic() > deadline:
            raise OperationFailed(f"the merge of disk {dev} did not finish within "
                                  f"{READY_WAIT:.0f} s; it was cancelled")
        time.sleep(POLL)


def _cancel(dom: Any, dev: str) -> None:
    """Cancel the block job on ``dev`` (the chain stays as it was), if any; never raises."""
    try:
        if dom.blockJobInfo(dev, 0):
            dom.blockJobAbort(dev, 0)
    except libvirt.libvirtError as exc:
        log.warning("could not cancel the block job on %s: %s", dev, exc.get_error_message())


def settle(dom: Any, top: str) -> bool:
    """After a crash: cancel a block job left on the disk whose chain holds ``top`` (an active
    commit still mirroring, an intermediate one not finished), then tell whether ``top`` is
    still in the chain of a running disk (True) or the commit had completed (False). A domain
    that does not run has no job and no live chain: True (nothing is known to be merged)."""
    if not dom.isActive():
        return True
    found = disk_chain(dom.XMLDesc(0), top)
    if found is None:
        return False
    dev = found[0]
    _cancel(dom, dev)
    for _ in range(100):  # a cancelled job leaves libvirt's list shortly after
        if not dom.blockJobInfo(dev, 0):
            break
        time.sleep(POLL)
    return disk_chain(dom.XMLDesc(0), top) is not None
