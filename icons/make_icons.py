#!/usr/bin/env python3
"""Draws Spare's icons: the app icon in every size the bundlers want, and one tray icon
per state. Pure standard library (shapes as signed distance fields, anti-aliased over one
pixel), so the PNGs in this folder can be made again anywhere: `python3 icons/make_icons.py`.

Tray states differ by shape as well as colour, so they read without colour vision:
  lending    green disc inside the ring (the ring is full)
  waiting    amber ring with an empty centre
  paused     grey ring with two pause bars
  attention  red disc with an exclamation mark
"""

import math
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))

BLUE = (31, 111, 235)
WHITE = (255, 255, 255)
GREEN = (26, 127, 55)
AMBER = (191, 135, 0)
GREY = (110, 119, 129)
RED = (207, 34, 46)


def png(width, height, pixels):
    """RGBA rows -> PNG bytes."""
    raw = b"".join(b"\x00" + bytes(row) for row in pixels)

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def render(size, layers):
    """Each layer is (sdf(x, y) in units of the icon's width, rgb); later layers on top."""
    rows = []
    for j in range(size):
        row = []
        for i in range(size):
            x, y = (i + 0.5) / size, (j + 0.5) / size
            r = g = b = a = 0.0
            for sdf, colour in layers:
                coverage = min(1.0, max(0.0, 0.5 - sdf(x, y) * size))
                if coverage <= 0:
                    continue
                # "over" compositing, premultiplied.
                r = colour[0] * coverage + r * (1 - coverage)
                g = colour[1] * coverage + g * (1 - coverage)
                b = colour[2] * coverage + b * (1 - coverage)
                a = coverage + a * (1 - coverage)
            if a > 0:
                row += [round(r / a), round(g / a), round(b / a), round(a * 255)]
            else:
                row += [0, 0, 0, 0]
        rows.append(row)
    return png(size, size, rows)


def disc(cx, cy, radius):
    return lambda x, y: math.hypot(x - cx, y - cy) - radius


def ring(cx, cy, radius, width):
    return lambda x, y: abs(math.hypot(x - cx, y - cy) - radius) - width / 2


def box(cx, cy, half_w, half_h, corner=0.0):
    def sdf(x, y):
        dx = abs(x - cx) - half_w + corner
        dy = abs(y - cy) - half_h + corner
        outside = math.hypot(max(dx, 0), max(dy, 0))
        return outside + min(max(dx, dy), 0) - corner

    return sdf


def app_icon(size):
    # A blue rounded square; a white ring with a white hub: a spare wheel.
    return render(
        size,
        [
            (box(0.5, 0.5, 0.44, 0.44, 0.1), BLUE),
            (ring(0.5, 0.5, 0.26, 0.08), WHITE),
            (disc(0.5, 0.5, 0.1), WHITE),
        ],
    )


TRAY = {
    "lending": [(ring(0.5, 0.5, 0.38, 0.12), GREEN), (disc(0.5, 0.5, 0.2), GREEN)],
    "waiting": [(ring(0.5, 0.5, 0.38, 0.12), AMBER)],
    "paused": [
        (ring(0.5, 0.5, 0.38, 0.12), GREY),
        (box(0.41, 0.5, 0.05, 0.17, 0.02), GREY),
        (box(0.59, 0.5, 0.05, 0.17, 0.02), GREY),
    ],
    "attention": [
        (disc(0.5, 0.5, 0.46), RED),
        (box(0.5, 0.4, 0.055, 0.2, 0.04), WHITE),
        (disc(0.5, 0.76, 0.065), WHITE),
    ],
}


def ico(images):
    """An .ico holding PNG images (Windows Vista and later read these)."""
    header = struct.pack("<HHH", 0, 1, len(images))
    offset = 6 + 16 * len(images)
    entries, data = b"", b""
    for size, blob in images:
        dim = 0 if size >= 256 else size
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(blob), offset + len(data))
        data += blob
    return header + entries + data


def icns(images):
    """An .icns holding PNG images (types ic07 128, ic08 256, ic09 512)."""
    kinds = {128: b"ic07", 256: b"ic08", 512: b"ic09"}
    body = b"".join(kinds[s] + struct.pack(">I", 8 + len(b)) + b for s, b in images)
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def main():
    def write(name, blob):
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(blob)

    sizes = {s: app_icon(s) for s in (16, 32, 48, 128, 256, 512)}
    write("32x32.png", sizes[32])
    write("128x128.png", sizes[128])
    write("128x128@2x.png", sizes[256])
    write("icon.png", sizes[512])
    write("icon.ico", ico([(s, sizes[s]) for s in (16, 32, 48, 256)]))
    write("icon.icns", icns([(s, sizes[s]) for s in (128, 256, 512)]))
    for state, layers in TRAY.items():
        write(f"tray-{state}.png", render(64, layers))


if __name__ == "__main__":
    main()
