#!/usr/bin/env python3
"""Draws the dashboard's PNG icons (192 and 512 px) with the standard library only.

Run once from the repository root after changing the design; the PNGs are committed:
    python3 dashboard/tools/make_icons.py
The drawing matches dashboard/icon.svg: a rounded indigo-to-cyan tile, a gate's arch and a
pulse line through it. Shapes are signed distance functions, supersampled for smooth edges.
"""
import math
import struct
import sys
import zlib
from pathlib import Path

TOP = (79, 70, 229)      # #4f46e5
BOTTOM = (6, 182, 212)   # #06b6d4
WHITE = (255, 255, 255)

PULSE = [(0.17, 0.60), (0.36, 0.60), (0.44, 0.42), (0.54, 0.76), (0.62, 0.54), (0.83, 0.54)]


def seg_dist(px, py, ax, ay, bx, by):
    dx, dy = bx - ax, by - ay
    t = ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)
    t = max(0.0, min(1.0, t))
    return math.hypot(px - ax - t * dx, py - ay - t * dy)


def rounded_square(px, py, r):
    # Distance outside a square [0,1]^2 with corner radius r (negative inside).
    qx = abs(px - 0.5) - (0.5 - r)
    qy = abs(py - 0.5) - (0.5 - r)
    return math.hypot(max(qx, 0), max(qy, 0)) + min(max(qx, qy), 0) - r


def arch_dist(px, py):
    # An arch: top half of a circle (centre 0.5,0.47, radius 0.25) and two legs to y=0.80.
    cx, cy, r = 0.5, 0.47, 0.25
    if py <= cy:
        d = abs(math.hypot(px - cx, py - cy) - r)
    else:
        d = min(seg_dist(px, py, cx - r, cy, cx - r, 0.80), seg_dist(px, py, cx + r, cy, cx + r, 0.80))
    return d


def pulse_dist(px, py):
    return min(seg_dist(px, py, *PULSE[i], *PULSE[i + 1]) for i in range(len(PULSE) - 1))


def shade(px, py):
    """RGBA of one sample point."""
    if rounded_square(px, py, 0.22) > 0:
        return (0, 0, 0, 0)
    t = (px + py) / 2
    bg = tuple(TOP[i] + (BOTTOM[i] - TOP[i]) * t for i in range(3))
    col = bg
    if arch_dist(px, py) < 0.035:
        col = tuple(bg[i] + (WHITE[i] - bg[i]) * 0.45 for i in range(3))
    if pulse_dist(px, py) < 0.045:
        col = WHITE
    return (*col, 255)


def render(size, ss=4):
    rows = []
    for y in range(size):
        row = bytearray([0])  # filter: none
        for x in range(size):
            acc = [0.0, 0.0, 0.0, 0.0]
            for sy in range(ss):
                for sx in range(ss):
                    r, g, b, a = shade((x + (sx + 0.5) / ss) / size, (y + (sy + 0.5) / ss) / size)
                    acc[0] += r * a
                    acc[1] += g * a
                    acc[2] += b * a
                    acc[3] += a
            n = ss * ss
            a = acc[3] / n
            if a > 0:
                row += bytes(round(acc[i] / acc[3]) for i in range(3)) + bytes([round(a)])
            else:
                row += b"\0\0\0\0"
        rows.append(bytes(row))
    return b"".join(rows)


def png(size, raw):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
    for size in (192, 512):
        (out / f"icon-{size}.png").write_bytes(png(size, render(size)))
        print(f"wrote {out / f'icon-{size}.png'}")


if __name__ == "__main__":
    main()
