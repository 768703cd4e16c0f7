#!/usr/bin/env python3
"""Write testdata/photos/exif-gps.jpg: rocket.jpg with the EXIF a phone writes (camera,
lens, date taken, exposure, a GPS position) and an XMP packet that repeats the position.
Run from the repository's root; the output is committed, this records how it was made."""
import struct

SRC, OUT = "testdata/photos/rocket.jpg", "testdata/photos/exif-gps.jpg"

def ascii_(s):
    return (2, len(s) + 1, s.encode() + b"\0")

def short(v):
    return (3, 1, struct.pack(">H", v))

def long_(v):
    return (4, 1, struct.pack(">I", v))

def rationals(*pairs):
    return (5, len(pairs), b"".join(struct.pack(">II", n, d) for n, d in pairs))

def ifd(entries, start):
    """An IFD at offset `start`, its values that don't fit in 4 bytes after it."""
    entries = sorted(entries.items())
    head = struct.pack(">H", len(entries))
    data_at = start + 2 + 12 * len(entries) + 4
    body, extra = b"", b""
    for tag, (typ, count, value) in entries:
        if len(value) <= 4:
            field = value.ljust(4, b"\0")
        else:
            field = struct.pack(">I", data_at + len(extra))
            extra += value + (b"\0" if len(value) % 2 else b"")
        body += struct.pack(">HHI", tag, typ, count) + field
    return head + body + b"\0\0\0\0" + extra

def tiff():
    gps = {
        0x0000: (1, 4, b"\x02\x03\x00\x00"),
        0x0001: ascii_("N"),
        0x0002: rationals((48, 1), (51, 1), (2959, 100)),
        0x0003: ascii_("E"),
        0x0004: rationals((2, 1), (17, 1), (4011, 100)),
        0x0006: rationals((35, 1)),
    }
    exif = {
        0x829A: rationals((1, 250)),          # ExposureTime 1/250
        0x829D: rationals((18, 10)),          # FNumber f/1.8
        0x8827: short(200),                   # ISO 200
        0x9003: ascii_("2024:07:14 18:32:05"),  # DateTimeOriginal
        0x920A: rationals((69, 10)),          # FocalLength 6.9 mm
        0xA434: ascii_("Pixel 8 back camera 6.9mm f/1.68"),  # LensModel
    }
    # Lay out: header (8), IFD0, Exif IFD, GPS IFD; offsets need two passes.
    ifd0 = {
        0x010F: ascii_("Google"),
        0x0110: ascii_("Pixel 8"),
        0x0112: short(1),
        0x8769: long_(0),
        0x8825: long_(0),
    }
    for _ in range(2):
        a = ifd(ifd0, 8)
        b = ifd(exif, 8 + len(a))
        ifd0[0x8769] = long_(8 + len(a))
        ifd0[0x8825] = long_(8 + len(a) + len(b))
    a = ifd(ifd0, 8)
    b = ifd(exif, 8 + len(a))
    c = ifd(gps, 8 + len(a) + len(b))
    return b"MM\0*" + struct.pack(">I", 8) + a + b + c

def segment(marker, payload):
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload

XMP = (b'http://ns.adobe.com/xap/1.0/\0<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
       b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="48,51.4932N" '
       b'exif:GPSLongitude="2,17.6685E"/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')

src = open(SRC, "rb").read()
assert src[:2] == b"\xff\xd8"
# Drop the source's own APP segments (JFIF, EXIF), keep the rest.
i, rest = 2, None
while True:
    marker, length = src[i + 1], struct.unpack(">H", src[i + 2:i + 4])[0]
    if not 0xE0 <= marker <= 0xEF:
        rest = src[i:]
        break
    i += 2 + length
out = b"\xff\xd8" + segment(0xE1, b"Exif\0\0" + tiff()) + segment(0xE1, XMP) + rest
open(OUT, "wb").write(out)
print(OUT, len(out), "bytes")
