"""Private inputs: GPS, serials and owner names leave input images before they are sent or kept; pixels stay."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib

from conftest import TEST_KEY, in_studio
from PIL import Image, PngImagePlugin

from nanobanana_ui.cli.main import main
from nanobanana_ui.domain.config import load_settings
from nanobanana_ui.imaging.images import load_input_image
from nanobanana_ui.imaging.pngmeta import read_image_info
from nanobanana_ui.imaging.privacy import personal_fields, strip_personal, stripped_inputs

SERIAL, OWNER, LATITUDE = "SN-98765-XYZ", "Jane Doe", (51.0, 30.0, 12.5)
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
       b'exif:GPSLatitude="51,30.2N"><dc:creator>Jane Doe</dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>')


def personal_exif(orientation: int = 1) -> Image.Exif:
    """EXIF as a phone writes it: make and model, exposure, GPS position, owner, body serial."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x013B] = "Canon", "EOS R5", OWNER
    if orientation != 1:
        exif[0x0112] = orientation
    exif[0x8825] = {1: "N", 2: LATITUDE, 3: "W", 4: (0.0, 7.0, 40.0)}
    exif.get_ifd(0x8769).update({0xA431: SERIAL, 0x829A: 0.01})
    return exif


def photo(fmt: str = "JPEG", orientation: int = 1, size: tuple[int, int] = (96, 64)) -> bytes:
    """A small photo-like image with personal EXIF (and XMP where the format holds it)."""
    im = Image.new("RGB", size)
    im.putdata([(x * 2 % 256, y * 3 % 256, (x + y) % 256) for y in range(size[1]) for x in range(size[0])])
    buf = io.BytesIO()
    extra: dict[str, object] = {"xmp": XMP} if fmt in ("JPEG", "WEBP") else {}
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("Author", OWNER)
        info.add_itxt("XML:com.adobe.xmp", XMP.decode())
        info.add_text("Software", "a camera app")
        extra["pnginfo"] = info
    im.save(buf, fmt, exif=personal_exif(orientation), **extra)
    return buf.getvalue()


def scan_data(jpeg: bytes) -> bytes:
    """Everything from the first SOS marker on: the entropy-coded picture (walks segments, as a decoder does)."""
    pos = 2
    while jpeg[pos + 1] != 0xDA:
        pos += 2 + struct.unpack(">H", jpeg[pos + 2:pos + 4])[0]
    return jpeg[pos:]


def png_chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of each chunk, checking every CRC on the way."""
    chunks, pos = [], 8
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        payload = png[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", png[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + payload)
        chunks.append((kind, payload))
        pos += 12 + length
    return chunks


def has_gps(data: bytes) -> bool:
    with Image.open(io.BytesIO(data)) as im:
        return 0x8825 in im.getexif() or b"GPSLatitude" in data


def test_jpeg_loses_gps_owner_serial_and_xmp_but_keeps_its_scan_data_and_camera():
    original = photo()
    result = strip_personal(original)
    assert has_gps(original) and not has_gps(result.data)
    assert scan_data(result.data) == scan_data(original)  # not re-encoded: the compressed picture is byte-identical
    assert len(result.data) < len(original)
    with Image.open(io.BytesIO(result.data)) as im:
        exif = im.getexif()
        assert (exif[0x010F], exif[0x0110]) == ("Canon", "EOS R5")  # nothing personal about the camera model
        assert 0x013B not in exif and 0xA431 not in exif.get_ifd(0x8769)
        assert exif.get_ifd(0x8769)[0x829A] == 0.01
        assert im.info.get("xmp") is None
    assert set(result.removed) >= {"EXIF:Artist", "EXIF:GPSLatitude", "EXIF:GPSLongitude", "EXIF:BodySerialNumber",
                                   "XMP:exif:GPSLatitude", "XMP:dc:creator"}
    for value in (SERIAL, OWNER, "51"):  # names only, never values
        assert value not in " ".join(result.removed)
    for value in (SERIAL.encode(), OWNER.encode(), b"GPS"):
        assert value not in result.data
    assert personal_fields(result.data) == () and strip_personal(result.data).data == result.data
    assert stripped_inputs(None) == [] and stripped_inputs({"request": {"images": [{"name": "a"}]}}) == []


def test_png_loses_exif_gps_and_personal_text_chunks_with_idat_untouched():
    original = photo("PNG")
    result = strip_personal(original)
    assert not has_gps(result.data) and OWNER.encode() not in result.data
    idat = [payload for kind, payload in png_chunks(original) if kind == b"IDAT"]
    assert [payload for kind, payload in png_chunks(result.data) if kind == b"IDAT"] == idat
    assert {"PNG:Author", "EXIF:GPSLatitude", "XMP:exif:GPSLatitude"} <= set(result.removed)
    with Image.open(io.BytesIO(result.data)) as im:
        assert im.text == {"Software": "a camera app"}  # nothing personal there: kept
        assert im.getexif()[0x010F] == "Canon"


def test_webp_loses_exif_gps_and_xmp_and_decodes_to_the_same_pixels():
    original = photo("WEBP")
    result = strip_personal(original)
    assert not has_gps(result.data) and OWNER.encode() not in result.data
    with Image.open(io.BytesIO(original)) as before, Image.open(io.BytesIO(result.data)) as after:
        assert before.tobytes() == after.tobytes()
        assert after.getexif()[0x010F] == "Canon"


def test_input_images_are_private_by_default_and_kept_on_request():
    original = photo()
    private = load_input_image(original, "holiday.jpg")
    assert not has_gps(private.data) and scan_data(private.data) == scan_data(original)
    assert "EXIF:GPSLatitude" in private.stripped and "removed personal metadata" in private.notes[0]
    assert private.sha256 == hashlib.sha256(private.data).hexdigest()
    kept = load_input_image(original, "holiday.jpg", keep_metadata=True)
    assert (kept.data, kept.stripped, kept.notes) == (original, (), ())


def test_a_rotated_photo_is_turned_upright_first_and_loses_its_gps():
    original = photo(orientation=6, size=(96, 64))  # 90° clockwise: shown as 64x96
    image = load_input_image(original, "portrait.jpg")
    assert (image.width, image.height) == (64, 96) and not has_gps(image.data)
    assert "rotated upright from EXIF" in image.notes and "EXIF:GPSLatitude" in image.stripped
    kept = load_input_image(original, "portrait.jpg", keep_metadata=True)
    with Image.open(io.BytesIO(kept.data)) as im:
        assert im.size == (64, 96) and 0x8825 in im.getexif() and 0x0112 not in im.getexif()


def test_what_the_emulator_received_and_the_history_hold_no_gps(settings, emulator):
    original = photo()

    async def scenario(studio):
        result = await studio.edit(original, "make it sunny")
        return result, studio.history.get(studio.history.page(limit=1)[0].id)

    result, entry = in_studio(settings, scenario)
    [sent] = emulator.generate_requests[0].images
    assert not has_gps(sent) and SERIAL.encode() not in sent and OWNER.encode() not in sent
    assert scan_data(sent) == scan_data(original)
    assert entry.input_hashes == (hashlib.sha256(sent).hexdigest(),)  # the history keeps the private copy's digest
    described = result.request.describe()["images"][0]
    assert "EXIF:GPSLatitude" in described["stripped"]
    info = read_image_info(result.images[0].path.read_bytes())  # what PNG Info shows of the result
    assert "EXIF:GPSLatitude" in info.request["request"]["images"][0]["stripped"]
    assert SERIAL not in json.dumps(info.request) and OWNER not in json.dumps(info.request)
    [(name, fields)] = stripped_inputs(info.request)  # what the PNG Info tab shows
    assert name == "image 1" and "EXIF:GPSLatitude" in fields and "EXIF:BodySerialNumber" in fields


def test_keep_metadata_setting_sends_the_original(settings, emulator):
    original = photo()
    in_studio(settings.with_overrides(keep_metadata=True), lambda studio: studio.edit(original, "as it is"))
    assert emulator.generate_requests[0].images == [original]


def test_keep_metadata_environment_variable(monkeypatch):
    assert load_settings(environ={}).keep_metadata is False
    assert load_settings(environ={"NANOBANANA_KEEP_METADATA": "1"}).keep_metadata is True


def test_cli_edit_compose_and_batch_strip_unless_told_to_keep(monkeypatch, emulator, tmp_path, capsys):
    monkeypatch.setenv("GEMINI_API_KEY", TEST_KEY)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emulator.base_url)
    monkeypatch.setenv("NANOBANANA_HOME", str(tmp_path / "home"))
    path = tmp_path / "holiday.jpg"
    path.write_bytes(photo())
    other = tmp_path / "other.jpg"
    other.write_bytes(photo(size=(80, 80)))
    assert main(["edit", str(path), "warmer", "--json"]) == 0
    assert main(["compose", str(path), str(other), "--prompt", "side by side", "--json"]) == 0
    batch = tmp_path / "rows.jsonl"
    batch.write_text(json.dumps({"prompt": "cooler", "images": [str(path)]}) + "\n")
    assert main(["batch", str(batch), "--yes", "--json", "--out", str(tmp_path / "b1")]) == 0
    sent = [image for request in emulator.generate_requests for image in request.images]
    assert len(sent) == 4 and not any(has_gps(image) for image in sent)
    emulator.reset()
    assert main(["edit", str(path), "warmer", "--json", "--keep-metadata"]) == 0
    assert main(["compose", str(path), str(other), "--prompt", "side by side", "--keep-metadata"]) == 0
    batch.write_text(json.dumps({"prompt": "cooler still", "images": [str(path)]}) + "\n")
    assert main(["batch", str(batch), "--yes", "--json", "--out", str(tmp_path / "b2"), "--keep-metadata"]) == 0
    sent = [image for request in emulator.generate_requests for image in request.images]
    assert sent == [path.read_bytes(), path.read_bytes(), other.read_bytes(), path.read_bytes()]
    capsys.readouterr()
