"""Two stream operations of the HTTP layer (``vsms.wbem.server``) that need care with asyncio."""

from __future__ import annotations

import asyncio
import contextlib
import ssl


async def start_tls(writer: asyncio.StreamWriter, tls: ssl.SSLContext, timeout: float) -> bool:
    """The server side of the TLS handshake on an accepted connection, within ``timeout``;
    False: the connection is gone.

    Await it before anything else awaits on the connection: start_tls must take the transport
    over before it reads the client's first bytes (the ClientHello) into the plain stream, so it
    is awaited directly (``asyncio.wait_for`` would run it a loop iteration later, and about one
    handshake in six then failed)."""
    raw = writer.transport
    try:
        await writer.start_tls(tls, ssl_handshake_timeout=timeout)
    except AttributeError:
        # Python 3.11: a connection closed during the handshake leaves the writer without a
        # transport (start_tls gets None); give it back the closed one, so that closing and
        # collecting the writer work as for any other closed connection
        setattr(writer, "_transport", raw)  # noqa: B010
        raw.abort()
        return False
    return True


async def linger(reader: asyncio.StreamReader, limit: int = 256 * 1024,
                 seconds: float = 1.0) -> int:
    """After a final reply: drop what the client is still sending (at most ``limit`` bytes,
    ``seconds``), so closing does not reset the connection before it read the reply. Nothing
    is kept; returns the bytes dropped."""
    dropped = 0

    async def drain() -> None:
        nonlocal dropped
        while dropped < limit:
            chunk = await reader.read(min(limit - dropped, 16 * 1024))
            if not chunk:
                return
            dropped += len(chunk)

    with contextlib.suppress(Exception):
        await asyncio.wait_for(drain(), seconds)
    return dropped
