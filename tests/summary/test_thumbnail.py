"""Screenshots (PNG as QEMU writes them, PPM) → RGB 5:6:5 thumbnails, without libvirt."""

from __future__ import annotations

import random
import struct
import zlib

import pytest

from vsms.errors import NotSupported
from vsms.mapping import thumbnail as t


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def encode_png(width: int, height: int, pixels: bytes, bpp: int = 3) -> bytes:
    """A PNG whose row y uses filter y % 5 (None, Sub, Up, Average, Paeth), written from the
    PNG specification (independent of the decoder under test)."""
    stride, prev, out = width * bpp, bytes(width * bpp), bytearray()
    for y in range(height):
        row = pixels[y * stride:(y + 1) * stride]
        kind = y % 5
        filtered = bytearray()
        for i in range(stride):
            a = row[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
            pred = (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]
            filtered.append((row[i] - pred) & 255)
        out += bytes([kind]) + filtered
        prev = row

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc
    header = struct.pack(">IIBBBBB", width, height, 8, 2 if bpp == 3 else 6, 0, 0, 0)
    return (t.PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(out)))
            + chunk(b"IEND", b""))


def test_png_every_row_filter_decodes_exactly() -> None:
    rnd = random.Random(7)
    width, height = 29, 17
    rgb = bytes(rnd.randrange(256) for _ in range(width * height * 3))
    assert t.decode_png(encode_png(width, height, rgb)) == (width, height, rgb)
    rgba = bytes(rnd.randrange(256) for _ in range(width * height * 4))
    expected = b"".join(rgba[i:i + 3] for i in range(0, len(rgba), 4))
    assert t.decode_png(encode_png(width, height, rgba, bpp=4)) == (width, height, expected)


def test_rgb565_is_little_endian_565() -> None:
    # pure red, green, blue, white, and a mixed colour
    rgb = bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 0x12, 0x34, 0x56])
    words = [(0x12 >> 3) << 11 | (0x34 >> 2) << 5 | (0x56 >> 3)]
    assert t.rgb565(rgb) == bytes([0x00, 0xF8, 0xE0, 0x07, 0x1F, 0x00, 0xFF, 0xFF,
                                   words[0] & 0xFF, words[0] >> 8])


def test_thumbnail_has_the_requested_size_and_keeps_the_picture() -> None:
    # left half red, right half blue, 720x400 like the VGA text console
    width, height = 720, 400
    row = bytes([255, 0, 0]) * (width // 2) + bytes([0, 0, 255]) * (width // 2)
    png = encode_png(width, height, row * height)
    small = t.thumbnail("image/png", png, 80, 60)
    assert len(small) == 80 * 60 * 2
    first_row = small[:160]
    assert first_row[:2] == b"\x00\xf8" and first_row[-2:] == b"\x1f\x00"
    ppm = b"P6\n# QEMU\n%d %d\n255\n" % (width, height) + row * height
    assert t.thumbnail("image/x-portable-pixmap", ppm, 80, 60) == small


@pytest.mark.parametrize(("mime", "data"), [
    ("image/png", b"\x89PNG\r\n\x1a\nnot really"),
    ("image/x-portable-pixmap", b"P3\n1 1\n255\n0 0 0\n"),
    ("image/x-portable-pixmap", b"P6\n4 4\n255\n\x00\x00"),
    ("image/jpeg", b"\xff\xd8\xff"),
])
def test_images_vsms_cannot_read_are_refused(mime: str, data: bytes) -> None:
    with pytest.raises(NotSupported):
        t.thumbnail(mime, data, 8, 6)
