#!/usr/bin/env python3
"""Draws the package icon: a loop of two arrows (a tunnel that comes back) in
white on a blue rounded square. Writes PACKAGE_ICON_<size>.png for 64, 72 and
256 pixels into the folder given (default: this one), and the Tunnels app's
icons, tunnels_<size>.png for 16, 24, 32, 48, 64, 72 and 256 pixels, into
../ui/images. Plain Python: zlib and
struct only, and the same bytes every time."""

import math
import os
import struct
import sys
import zlib


def inside_rounded_square(x, y, size, radius):
    r = radius
    cx = min(max(x, r), size - r)
    cy = min(max(y, r), size - r)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def pixel(x, y, size):
    """RGBA of the pixel centred at (x, y), supersampled 4x4."""
    covered_square = 0
    covered_mark = 0
    for i in range(4):
        for j in range(4):
            px = x + (i + 0.5) / 4
            py = y + (j + 0.5) / 4
            if not inside_rounded_square(px, py, size, size * 0.2):
                continue
            covered_square += 1
            if on_mark(px / size, py / size):
                covered_mark += 1
    if covered_square == 0:
        return (0, 0, 0, 0)
    alpha = round(255 * covered_square / 16)
    share = covered_mark / covered_square
    blue = (0x1f, 0x5f, 0xa8)
    white = (0xff, 0xff, 0xff)
    rgb = tuple(round(b + (w - b) * share) for b, w in zip(blue, white))
    return rgb + (alpha,)


def on_mark(u, v):
    """The mark, in unit coordinates: a ring broken at two places, with an
    arrow head at each break, turning clockwise."""
    dx, dy = u - 0.5, v - 0.5
    r = math.hypot(dx, dy)
    angle = math.degrees(math.atan2(dy, dx)) % 360
    ring = 0.24 <= r <= 0.33
    gap = any(abs((angle - g + 180) % 360 - 180) < 22 for g in (90, 270))
    if ring and not gap:
        return True
    for g in (90, 270):
        # An arrow head at the end of each arc, pointing along the ring.
        tip_angle = math.radians(g - 10)
        base_angle = math.radians(g - 30)
        tip = (0.5 + 0.285 * math.cos(tip_angle), 0.5 + 0.285 * math.sin(tip_angle))
        b1 = (0.5 + 0.40 * math.cos(base_angle), 0.5 + 0.40 * math.sin(base_angle))
        b2 = (0.5 + 0.17 * math.cos(base_angle), 0.5 + 0.17 * math.sin(base_angle))
        if in_triangle((u, v), tip, b1, b2):
            return True
    return False


def in_triangle(p, a, b, c):
    def side(p1, p2, p3):
        return (p1[0] - p3[0]) * (p2[1] - p3[1]) - (p2[0] - p3[0]) * (p1[1] - p3[1])

    d1, d2, d3 = side(p, a, b), side(p, b, c), side(p, c, a)
    negative = d1 < 0 or d2 < 0 or d3 < 0
    positive = d1 > 0 or d2 > 0 or d3 > 0
    return not (negative and positive)


def png(size):
    rows = b""
    for y in range(size):
        row = b"\x00"
        for x in range(size):
            row += bytes(pixel(x, y, size))
        rows += row

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    for size in (64, 72, 256):
        with open(os.path.join(out, f"PACKAGE_ICON_{size}.png"), "wb") as f:
            f.write(png(size))
    here = os.path.dirname(os.path.abspath(__file__))
    images = os.path.join(here, "..", "ui", "images")
    os.makedirs(images, exist_ok=True)
    for size in (16, 24, 32, 48, 64, 72, 256):
        with open(os.path.join(images, f"tunnels_{size}.png"), "wb") as f:
            f.write(png(size))


main()
