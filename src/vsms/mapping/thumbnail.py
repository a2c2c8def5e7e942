"""A console screenshot → a thumbnail in the pixel format of the v1 API: raw RGB 5:6:5, 16
bits per pixel, little-endian (the low byte first: green's low three bits and blue, then red
and green's high three bits), rows top to bottom, no header, no padding: ``width * height * 2``
bytes.

libvirt's QEMU driver returns PNG (with QEMU 7.1 and later) or binary PPM (before). PNG is
decoded here with ``zlib`` (8-bit RGB or RGBA, not interlaced: what QEMU writes).
Scaling is nearest-neighbour to exactly the requested size (the aspect ratio is not kept, as
Hyper-V does). Most per-pixel work runs in C (``bytes.translate``, slicing, big-integer
arithmetic, ``itertools.accumulate``); only PNG rows filtered with Average or Paeth are undone
byte by byte in Python (about 1 ms per such row of a 720-pixel screen).
"""

from __future__ import annotations

import itertools
import struct
import zlib

from vsms.errors import NotSupported

PPM_TYPES = ("image/x-portable-pixmap", "image/x-portable-anymap", "image/x-ppm", "")
PNG_TYPES = ("image/png",)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_SCREEN = 8192 * 8192  # pixels: a larger screen is refused rather than decoded
MAX_PIXELS = 1024 * 768  # the largest thumbnail GetVirtualSystemThumbnailImage makes
SIZES = {5: (80, 60), 6: (160, 120), 7: (320, 240)}  # RequestedInformation -> (w, h)

_RED = bytes(v & 0xF8 for v in range(256))  # high byte: RRRRR...
_GREEN_HIGH = bytes(v >> 5 for v in range(256))  # high byte: .....GGG
_GREEN_LOW = bytes((v & 0x1C) << 3 for v in range(256))  # low byte: GGG.....
_BLUE = bytes(v >> 3 for v in range(256))  # low byte: ...BBBBB


def _token(data: bytes, pos: int) -> tuple[bytes, int]:
    """The next header token of a PPM (comments skipped) and the position after it."""
    n = len(data)
    while pos < n:
        c = data[pos:pos + 1]
        if c == b"#":
            end = data.find(b"\n", pos)
            pos = n if end < 0 else end + 1
        elif c.isspace():
            pos += 1
        else:
            break
    start = pos
    while pos < n and not data[pos:pos + 1].isspace() and data[pos:pos + 1] != b"#":
        pos += 1
    return data[start:pos], pos


def decode_ppm(data: bytes) -> tuple[int, int, bytes]:
    """(width, height, RGB bytes, 3 per pixel) of a binary PPM (P6) with maxval < 256."""
    magic, pos = _token(data, 0)
    if magic != b"P6":
        raise NotSupported("the screenshot is not a binary PPM image (P6); vsms makes "
                           "thumbnails from QEMU's PPM screenshots only")
    try:
        fields = []
        for _ in range(3):
            tok, pos = _token(data, pos)
            fields.append(int(tok))
    except ValueError:
        raise NotSupported("the screenshot's PPM header is damaged") from None
    width, height, maxval = fields
    if width <= 0 or height <= 0 or not 0 < maxval < 256:
        raise NotSupported(f"the screenshot is a {width}x{height} PPM with maxval {maxval}; "
                           "vsms reads 8-bit PPM images only")
    pos += 1  # the single whitespace after maxval
    size = width * height * 3
    pixels = data[pos:pos + size]
    if len(pixels) != size:
        raise NotSupported(f"the screenshot is truncated: {len(pixels)} of {size} pixel bytes")
    if maxval != 255:
        table = bytes(min(255, v * 255 // maxval) for v in range(256))
        pixels = pixels.translate(table)
    return width, height, pixels


def scale(width: int, height: int, rgb: bytes, to_w: int, to_h: int) -> bytes:
    """Nearest-neighbour resampling of ``rgb`` (3 bytes per pixel) to ``to_w`` x ``to_h``."""
    xs = [(x * width // to_w) * 3 for x in range(to_w)]
    rows = []
    for y in range(to_h):
        start = (y * height // to_h) * width * 3
        row = rgb[start:start + width * 3]
        rows.append(b"".join([row[o:o + 3] for o in xs]))
    return b"".join(rows)


def _or(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "little") | int.from_bytes(b, "little")).to_bytes(len(a), "little")


def rgb565(rgb: bytes) -> bytes:
    """RGB bytes (3 per pixel) → RGB 5:6:5 words, little-endian (2 bytes per pixel)."""
    red, green, blue = rgb[0::3], rgb[1::3], rgb[2::3]
    out = bytearray(len(red) * 2)
    out[0::2] = _or(green.translate(_GREEN_LOW), blue.translate(_BLUE))
    out[1::2] = _or(red.translate(_RED), green.translate(_GREEN_HIGH))
    return bytes(out)


def _add(a: bytes, b: bytes) -> bytes:
    """Bytewise (a + b) mod 256, without carries between bytes (big-integer SWAR)."""
    n = len(a)
    x, y = int.from_bytes(a, "little"), int.from_bytes(b, "little")
    low = int.from_bytes(b"\x7f" * n, "little")
    high = int.from_bytes(b"\x80" * n, "little")
    return (((x & low) + (y & low)) ^ ((x ^ y) & high)).to_bytes(n, "little")


def _sub(row: bytes, bpp: int) -> bytes:
    out = bytearray(len(row))
    for c in range(bpp):
        out[c::bpp] = bytes(map((255).__and__, itertools.accumulate(row[c::bpp])))
    return bytes(out)


def _average(row: bytes, prev: bytes, bpp: int) -> bytes:
    out = bytearray(row)
    for i in range(len(out)):
        left = out[i - bpp] if i >= bpp else 0
        out[i] = (out[i] + ((left + prev[i]) >> 1)) & 255
    return bytes(out)


def _paeth(row: bytes, prev: bytes, bpp: int) -> bytes:
    out = bytearray(row)
    for i in range(len(out)):
        if i >= bpp:
            a, c = out[i - bpp], prev[i - bpp]
        else:
            a = c = 0
        b = prev[i]
        pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
        pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        out[i] = (out[i] + pred) & 255
    return bytes(out)


def decode_png(data: bytes) -> tuple[int, int, bytes]:
    """(width, height, RGB bytes, 3 per pixel) of an 8-bit RGB or RGBA PNG, not interlaced."""
    if not data.startswith(PNG_SIGNATURE):
        raise NotSupported("the screenshot is not a PNG image")
    pos, header, idat = len(PNG_SIGNATURE), b"", []
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if len(header) != 13:
        raise NotSupported("the screenshot's PNG has no valid IHDR chunk")
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or color not in (2, 6) or interlace:
        raise NotSupported(f"the screenshot is a PNG of bit depth {depth}, color type {color}"
                           f"{', interlaced' if interlace else ''}; vsms reads 8-bit RGB or "
                           "RGBA PNG images that are not interlaced")
    if not 0 < width * height <= MAX_SCREEN:
        raise NotSupported(f"the screenshot is {width}x{height} pixels: too large")
    bpp = 3 if color == 2 else 4
    stride = width * bpp
    try:
        raw = zlib.decompressobj().decompress(b"".join(idat), (stride + 1) * height)
    except zlib.error as exc:
        raise NotSupported(f"the screenshot's PNG data is damaged: {exc}") from None
    if len(raw) < (stride + 1) * height:
        raise NotSupported("the screenshot's PNG data is truncated")
    rows, prev = [], bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, row = raw[start], raw[start + 1:start + 1 + stride]
        if kind == 1:
            row = _sub(row, bpp)
        elif kind == 2:
            row = _add(row, prev)
        elif kind == 3:
            row = _average(row, prev, bpp)
        elif kind == 4:
            row = _paeth(row, prev, bpp)
        elif kind != 0:
            raise NotSupported(f"the screenshot's PNG has an unknown row filter {kind}")
        rows.append(row)
        prev = row
    pixels = b"".join(rows)
    if bpp == 4:  # drop alpha
        rgb = bytearray(width * height * 3)
        for c in range(3):
            rgb[c::3] = pixels[c::4]
        pixels = bytes(rgb)
    return width, height, pixels


def thumbnail(mime: str, image: bytes, width: int, height: int) -> bytes:
    """The screenshot ``image`` (MIME type ``mime``) as a ``width`` x ``height`` RGB 5:6:5
    thumbnail; NotSupported for an image vsms cannot read."""
    if mime.lower() in PNG_TYPES or image.startswith(PNG_SIGNATURE):
        w, h, rgb = decode_png(image)
    elif mime.lower() in PPM_TYPES:
        w, h, rgb = decode_ppm(image)
    else:
        raise NotSupported(f"libvirt returned a {mime} screenshot; vsms makes thumbnails from "
                           "PNG and PPM screenshots only")
    return rgb565(scale(w, h, rgb, width, height))
