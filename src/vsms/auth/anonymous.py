"""The one request served without credentials: the WS-Management Identify.

Every WinRM host answers an Identify that carries no credentials (``Test-WSMan HOST``,
``winrm id -r:HOST -a:None``, ``wslid`` without a user): it is how a client finds out that a
WS-Man service listens, before it logs in. vsms does the same on its WS-Man listeners, and
nothing else (docs/security.md, *Identify without credentials*):

- :func:`without_credentials`: the request carries none (no ``Authorization`` header, or Basic
  with an empty name and password, which is what ``curl -u :`` sends; no user has an empty
  name, so it can never be a login attempt);
- :func:`may_identify`: the HTTP layer may read the body of such a request to see whether it is
  an Identify: a POST of at most :data:`IDENTIFY_MAX_BODY` bytes with a Content-Length, from a
  source not in back-off. Any other request without credentials gets the 401 at once, its body
  unread, as before;
- :class:`IdentifyAudit`: the audit line of an Identify answered without credentials, at most
  one per source address a minute (the ones in between are counted in the next line), so that
  a client without an account cannot rotate the audit log's older lines away.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from vsms.auth.audit import AuditLog
from vsms.auth.limiter import FailureLimiter

#: bodies larger than this are refused (401) without being read when they carry no credentials;
#: an Identify envelope is about 300 bytes (UTF-16: twice that)
IDENTIFY_MAX_BODY = 8 * 1024


def without_credentials(header: str | None) -> bool:
    """True when the ``Authorization`` header gives no credentials: absent or empty, or Basic
    with an empty name and an empty password (``Og==``, base64 of ``:``)."""
    if not header or not header.strip():
        return True
    scheme, _, token = header.strip().partition(" ")
    return scheme.lower() == "basic" and token.strip() == "Og=="


def may_identify(limiter: FailureLimiter, method: str, headers: Mapping[str, str],
                 source: str) -> bool:
    """Whether a request without credentials may have its body read and looked at as an
    Identify (see the module docstring); False: refuse it as any other request."""
    if method != "POST" or not without_credentials(headers.get("authorization")):
        return False
    if headers.get("transfer-encoding", "identity").lower() != "identity":
        return False
    try:
        length = int(headers.get("content-length", ""))
    except ValueError:
        return False
    return 0 < length <= IDENTIFY_MAX_BODY and limiter.retry_after(source) <= 0


class IdentifyAudit:
    """Writes ``{"event": "identify", "user": "-", "auth": "anonymous", "source",
    "operation": "Identify", "repeated"}`` for an Identify answered without credentials: the
    first from a source address, then at most one every ``every`` seconds; ``repeated`` counts
    the ones from that source since its previous line that got no line of their own. At most
    ``max_sources`` addresses are remembered."""

    def __init__(self, audit: AuditLog, *, every: float = 60.0, max_sources: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.audit = audit
        self.every = every
        self.max_sources = max_sources
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, int]] = {}  # source -> (last line, unwritten since)

    def record(self, source: str) -> None:
        now = self._clock()
        with self._lock:
            last, count = self._seen.get(source, (None, 0))
            if last is not None and now - last < self.every:
                self._seen[source] = (last, count + 1)
                return
            if source not in self._seen and len(self._seen) >= self.max_sources:
                self._seen = {s: v for s, v in self._seen.items() if now - v[0] < self.every}
                if len(self._seen) >= self.max_sources:
                    self._seen.clear()
            self._seen[source] = (now, 0)
        self.audit.write("identify", user="-", auth="anonymous", source=source,
                         operation="Identify", repeated=count)
