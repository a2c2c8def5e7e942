"""Stream operations of the HTTP layer (``vsms.wbem.server``) that need care with asyncio."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from vsms.wbem.protocol import Reply, reason

BIG_BODY = 256 * 1024  # a larger piece of a reply is written on its own, not copied to others


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


def keep_alive(version: str, headers: dict[str, str]) -> bool:
    """Does the client keep the connection open after this request?"""
    conn = headers.get("connection", "").lower()
    if "close" in conn:
        return False
    return version != "HTTP/1.0" or "keep-alive" in conn


async def write_reply(writer: asyncio.StreamWriter, reply: Reply, close: bool,
                      timeout: float) -> None:
    """The status line, headers and body (``reply.body`` and ``reply.more``), drained within
    ``timeout``. Small pieces go out together in one segment; a large one (a kept text, say)
    is written on its own: copying it next to the head would cost more than a second write."""
    head = [f"HTTP/1.1 {reply.status} {reason(reply.status)}"]
    head.extend(f"{k}: {v}" for k, v in reply.headers)
    head.append(f"Content-Length: {reply.size()}")
    head.append("Connection: close" if close else "Connection: keep-alive")
    small = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
    for piece in (reply.body, *reply.more):
        if len(piece) < BIG_BODY:
            small += piece
            continue
        if small:
            writer.write(small)
            small = b""
        writer.write(piece)
    if small:
        writer.write(small)
    async with asyncio.timeout(timeout):
        await writer.drain()
