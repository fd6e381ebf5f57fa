"""Private inputs: remove location and other personal metadata from an image's bytes without touching its pixels.

JPEG: the segments before the first scan are edited one by one (APP1 Exif is rewritten without its personal tags,
APP1 XMP and APP13 IPTC holding personal fields are dropped, MPO preview images after the end of the picture go);
everything from the first SOS marker to EOI is copied byte for byte, so the compressed picture is never re-encoded.
PNG: eXIf is rewritten, personal tEXt/zTXt/iTXt chunks are dropped. WebP: the EXIF and XMP chunks likewise.

What was removed is reported by field name (``EXIF:GPSLatitude``, ``XMP:dc:creator``, ``PNG:Author``), never by value.
Orientation is not handled here: the caller rotates images that need it (which re-encodes them anyway).
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from PIL import ExifTags, Image

__all__ = ["Stripped", "personal_fields", "strip_personal", "stripped_inputs"]

# Top-level (IFD0) and Exif-IFD tags that identify a person, a device or a place; GPSInfo is the whole GPS IFD.
_IFD0_PERSONAL = {0x013B: "Artist", 0x013C: "HostComputer", 0x9C9D: "XPAuthor", 0xC62F: "CameraSerialNumber"}
_EXIF_PERSONAL = {0xA430: "CameraOwnerName", 0xA431: "BodySerialNumber", 0xA435: "LensSerialNumber",
                  0xA420: "ImageUniqueID", 0x927C: "MakerNote"}  # maker notes hold serials, owner names, even GPS
_GPS = int(ExifTags.IFD.GPSInfo)
_EXIF_IFD = int(ExifTags.IFD.Exif)
# XMP properties (local names, any namespace) that are personal; any name starting with GPS is too.
_XMP_PERSONAL = {
    "creator", "Artist", "Author", "Owner", "OwnerName", "CameraOwnerName", "SerialNumber", "BodySerialNumber",
    "LensSerialNumber", "ImageUniqueID", "Location", "LocationCreated", "LocationShown", "Sublocation", "City",
    "State", "Country", "CountryCode", "CreatorContactInfo", "PersonInImage", "Regions", "By-line",
}
_XMP_JPEG = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_EXTENDED = b"http://ns.adobe.com/xmp/extension/\x00"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG text keywords that carry personal data (lower case); ImageMagick's raw profiles hold whole EXIF/XMP/IPTC blocks.
_PNG_PERSONAL_KEYS = {"author", "artist", "owner", "creator", "location", "gps", "serial number", "copyright owner"}
_PNG_RAW_PROFILES = ("raw profile type exif", "raw profile type app1", "raw profile type xmp",
                     "raw profile type iptc", "raw profile type 8bim")


@dataclass(frozen=True)
class Stripped:
    """An image's bytes with personal metadata removed, and the names of the fields that went (no values)."""

    data: bytes = field(repr=False)
    removed: tuple[str, ...]


def strip_personal(data: bytes) -> Stripped:
    """Remove personal metadata from a JPEG, PNG or WebP (other bytes come back unchanged); pixels stay as they were.

    Raises ValueError when the container itself is malformed, so the caller can re-encode instead.
    """
    if data.startswith(b"\xff\xd8"):
        return _strip_jpeg(data)
    if data.startswith(_PNG_SIGNATURE):
        return _strip_png(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _strip_webp(data)
    return Stripped(data, ())


def personal_fields(data: bytes) -> tuple[str, ...]:
    """The names of the personal fields an image carries (what `strip_personal` would remove); never raises."""
    try:
        return strip_personal(data).removed
    except ValueError:
        return ()


def stripped_inputs(record: Mapping[str, Any] | None) -> list[tuple[str, tuple[str, ...]]]:
    """From a saved image's `nanobanana` record (pngmeta.ImageInfo.request): each input's name and removed fields.

    For PNG Info: which personal fields were taken off which input before it was sent; [] when none were.
    """
    request = record.get("request") if isinstance(record, Mapping) else None
    images = request.get("images") if isinstance(request, Mapping) else None
    found = []
    for image in images if isinstance(images, list) else []:
        fields = image.get("stripped") if isinstance(image, Mapping) else None
        if isinstance(fields, list) and fields:
            found.append((str(image.get("name") or "image"), tuple(str(f) for f in fields)))
    return found


# --- EXIF (shared by all three formats) -------------------------------------------------------------------------


def _exif_personal(tiff: bytes) -> list[str]:
    """Names of the personal EXIF fields in a TIFF-structured EXIF block ("Exif\\0\\0" prefix allowed)."""
    reader = Image.Exif()
    reader.load(tiff)
    names = [f"EXIF:{name}" for tag, name in _IFD0_PERSONAL.items() if tag in reader]
    if _GPS in reader:
        gps = reader.get_ifd(_GPS)
        names += [f"EXIF:{ExifTags.GPSTAGS.get(tag, f'GPS tag {tag}')}" for tag in sorted(gps)] or ["EXIF:GPSInfo"]
    exif_ifd = reader.get_ifd(_EXIF_IFD) if _EXIF_IFD in reader else {}
    names += [f"EXIF:{name}" for tag, name in _EXIF_PERSONAL.items() if tag in exif_ifd]
    if names and reader.get_ifd(ExifTags.IFD.IFD1):
        names.append("EXIF:thumbnail")  # rewriting drops it, and a thumbnail may show what a crop removed
    return names


def _exif_without_personal(tiff: bytes) -> tuple[bytes | None, list[str]]:
    """The EXIF block rewritten without personal tags ("Exif\\0\\0" + TIFF), or None when nothing is personal.

    A block Pillow cannot read or rewrite is dropped whole rather than sent with what it may hold.
    """
    try:
        names = _exif_personal(tiff)
        if not names:
            return None, []
        writer = Image.Exif()
        writer.load(tiff)
        for tag in (*_IFD0_PERSONAL, _GPS):
            writer.pop(tag, None)
        if _EXIF_IFD in writer:
            exif_ifd = writer.get_ifd(_EXIF_IFD)  # the dict tobytes() writes back
            for tag in _EXIF_PERSONAL:
                exif_ifd.pop(tag, None)
        return writer.tobytes(), names
    except Exception:  # noqa: BLE001 - Pillow's TIFF reader raises many types on bad data: drop the block
        return b"", ["EXIF:all (unreadable)"]


# --- XMP --------------------------------------------------------------------------------------------------------


def _xmp_personal(packet: bytes) -> list[str]:
    """Names (prefix:name) of the personal properties in an XMP packet; an unreadable packet counts as personal."""
    try:
        root = ET.fromstring(packet.strip(b"\x00 \r\n\t"))
    except ET.ParseError:
        return ["XMP:packet (unreadable)"]
    found: list[str] = []
    for element in root.iter():
        for qualified in (element.tag, *element.attrib):
            if not isinstance(qualified, str):
                continue
            namespace, _, local = qualified.rpartition("}")
            if local in _XMP_PERSONAL or local.startswith("GPS"):
                name = f"XMP:{_xmp_prefix(namespace.lstrip('{'))}{local}"
                if name not in found:
                    found.append(name)
    return found


def _xmp_prefix(namespace: str) -> str:
    """The usual prefix of a well-known XMP namespace ("exif:"), else none."""
    known = {"http://ns.adobe.com/exif/1.0/": "exif:", "http://purl.org/dc/elements/1.1/": "dc:",
             "http://ns.adobe.com/tiff/1.0/": "tiff:", "http://ns.adobe.com/exif/1.0/aux/": "aux:",
             "http://ns.adobe.com/photoshop/1.0/": "photoshop:", "http://cipa.jp/exif/1.0/": "exifEX:",
             "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/": "Iptc4xmpCore:",
             "http://iptc.org/std/Iptc4xmpExt/2008-02-29/": "Iptc4xmpExt:"}
    return known.get(namespace, "")


# --- JPEG -------------------------------------------------------------------------------------------------------


def _jpeg_segments(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """The (marker, whole segment) pairs between SOI and the first SOS, and the SOS marker's offset."""
    segments: list[tuple[int, bytes]] = []
    pos = 2
    while True:
        if pos + 4 > len(data) or data[pos] != 0xFF:
            raise ValueError("JPEG segment structure is broken")
        while data[pos + 1] == 0xFF:  # fill bytes before a marker
            pos += 1
        marker = data[pos + 1]
        if marker == 0xDA:
            return segments, pos
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            segments.append((marker, data[pos:pos + 2]))
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if length < 2 or pos + 2 + length > len(data):
            raise ValueError("a JPEG segment runs past the end of the file")
        segments.append((marker, data[pos:pos + 2 + length]))
        pos += 2 + length


def _jpeg_end(data: bytes, sos: int) -> int:
    """The offset just past the first image's EOI (scans and the segments between them skipped); len(data) if none."""
    pos = sos
    while pos + 2 <= len(data):
        marker = data[pos + 1]
        if marker == 0xD9:
            return pos + 2
        if pos + 4 > len(data):
            break
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        pos += 2 + length
        if marker != 0xDA:
            continue
        while True:  # entropy-coded data: FF00 is a stuffed byte, FFD0-FFD7 restart markers, FFFF fill
            found = data.find(b"\xff", pos)
            if found < 0 or found + 1 >= len(data):
                return len(data)
            following = data[found + 1]
            if following == 0 or 0xD0 <= following <= 0xD7 or following == 0xFF:
                pos = found + (1 if following == 0xFF else 2)
                continue
            pos = found
            break
    return len(data)


def _strip_jpeg(data: bytes) -> Stripped:
    segments, sos = _jpeg_segments(data)
    end = _jpeg_end(data, sos)
    removed: list[str] = []
    kept: list[bytes] = []
    trailing = data[end:]
    if trailing.lstrip(b"\x00").startswith(b"\xff\xd8"):  # MPO: more pictures, each with its own metadata
        try:
            extra = _strip_jpeg(trailing.lstrip(b"\x00")).removed
        except ValueError:
            extra = ("MPO:extra images (unreadable)",)
        if extra:  # dropped whole (with their MPF index below); else kept as they are
            removed.append("MPO:extra images")
        else:
            end = len(data)
    elif trailing.strip(b"\x00"):
        removed.append("JPEG:data after the image")  # e.g. a phone's trailer or motion-photo video
    for marker, segment in segments:
        payload = segment[4:]
        if marker == 0xE1 and payload.startswith(b"Exif\x00\x00"):
            rewritten, names = _exif_without_personal(payload)
            removed += names
            if rewritten is None:
                kept.append(segment)
            elif rewritten and len(rewritten) + 2 <= 0xFFFF:
                kept.append(b"\xff\xe1" + struct.pack(">H", len(rewritten) + 2) + rewritten)
            continue
        if marker == 0xE1 and payload.startswith(_XMP_JPEG):
            names = _xmp_personal(payload[len(_XMP_JPEG):])
            removed += names
            if not names:
                kept.append(segment)
            continue
        if marker == 0xE1 and payload.startswith(_XMP_EXTENDED):
            removed.append("XMP:extended packet")  # a fragment of a larger packet: it cannot be checked alone
            continue
        if marker == 0xED and payload.startswith(b"Photoshop 3.0\x00") and b"8BIM\x04\x04" in payload:
            removed.append("IPTC:record (by-line, city, location...)")
            continue
        if marker == 0xE2 and payload.startswith(b"MPF\x00") and end < len(data):
            continue  # the index of the extra pictures dropped
        kept.append(segment)
    if not removed:
        return Stripped(data, ())
    return Stripped(b"\xff\xd8" + b"".join(kept) + data[sos:end], tuple(dict.fromkeys(removed)))


# --- PNG --------------------------------------------------------------------------------------------------------


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes, bytes]]:
    """(type, payload, whole chunk) for each chunk; raises ValueError on a chunk that runs past the end."""
    pos = len(_PNG_SIGNATURE)
    while pos < len(data):
        if pos + 12 > len(data):
            raise ValueError("a PNG chunk is truncated")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        whole = data[pos:pos + 12 + length]
        if len(whole) < 12 + length:
            raise ValueError("a PNG chunk runs past the end of the file")
        yield kind, whole[8:8 + length], whole
        pos += 12 + length
        if kind == b"IEND":
            return


def _png_text_key_and_value(kind: bytes, payload: bytes) -> tuple[str, bytes]:
    """A text chunk's keyword and its (uncompressed where cheap) text; compressed iTXt/zTXt text left raw."""
    key, _, rest = payload.partition(b"\x00")
    if kind == b"tEXt":
        return key.decode("latin-1"), rest
    if kind == b"iTXt" and len(rest) >= 2 and rest[0] == 0:
        _, _, after_lang = rest[2:].partition(b"\x00")
        return key.decode("latin-1"), after_lang.partition(b"\x00")[2]
    if kind == b"iTXt" and len(rest) >= 2:
        _, _, after_lang = rest[2:].partition(b"\x00")
        return key.decode("latin-1"), _inflate(after_lang.partition(b"\x00")[2])
    return key.decode("latin-1"), _inflate(rest[1:]) if rest else b""


def _inflate(compressed: bytes) -> bytes:
    """Decompress at most 16 MB of a text chunk (a zip bomb stops there)."""
    return zlib.decompressobj().decompress(compressed, 16 * 1024 * 1024)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _strip_png(data: bytes) -> Stripped:
    removed: list[str] = []
    kept = [_PNG_SIGNATURE]
    for kind, payload, whole in _png_chunks(data):
        if kind == b"eXIf":
            rewritten, names = _exif_without_personal(payload)
            removed += names
            if rewritten is None:
                kept.append(whole)
            elif rewritten:
                kept.append(_png_chunk(b"eXIf", rewritten.removeprefix(b"Exif\x00\x00")))
            continue
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            try:
                key, text = _png_text_key_and_value(kind, payload)
            except zlib.error:
                key, text = payload.partition(b"\x00")[0].decode("latin-1"), b""
            lowered = key.lower()
            if lowered in _PNG_PERSONAL_KEYS or lowered.startswith(_PNG_RAW_PROFILES):
                removed.append(f"PNG:{key}")
                continue
            if key == "XML:com.adobe.xmp" and (names := _xmp_personal(text)):
                removed += names
                continue
        kept.append(whole)
    if not removed:
        return Stripped(data, ())
    return Stripped(b"".join(kept), tuple(dict.fromkeys(removed)))


# --- WebP -------------------------------------------------------------------------------------------------------


def _strip_webp(data: bytes) -> Stripped:
    removed: list[str] = []
    kept: list[bytearray] = []
    pos = 12
    while pos + 8 <= len(data):
        kind, length = struct.unpack("<4sI", data[pos:pos + 8])
        whole = bytearray(data[pos:pos + 8 + length + (length & 1)])
        if len(whole) < 8 + length:
            raise ValueError("a WebP chunk runs past the end of the file")
        pos += len(whole)
        if kind == b"EXIF":
            rewritten, names = _exif_without_personal(bytes(whole[8:8 + length]))
            removed += names
            if rewritten is None:
                kept.append(whole)
            elif rewritten:
                body = rewritten.removeprefix(b"Exif\x00\x00")
                kept.append(bytearray(b"EXIF" + struct.pack("<I", len(body)) + body + b"\x00" * (len(body) & 1)))
            continue
        if kind == b"XMP " and (names := _xmp_personal(bytes(whole[8:8 + length]))):
            removed += names
            continue
        kept.append(whole)
    if not removed:
        return Stripped(data, ())
    kinds = {bytes(chunk[:4]) for chunk in kept}
    for chunk in kept:
        if chunk[:4] == b"VP8X":  # feature flags: say no EXIF / XMP when their chunk is gone
            chunk[8] &= ~((0x08 if b"EXIF" not in kinds else 0) | (0x04 if b"XMP " not in kinds else 0)) & 0xFF
    body = b"WEBP" + b"".join(kept)
    return Stripped(b"RIFF" + struct.pack("<I", len(body)) + body, tuple(dict.fromkeys(removed)))
