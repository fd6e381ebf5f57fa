"""PNG provenance: parameters and JSON request spliced in without re-encoding, and PNG Info reading any image."""

from __future__ import annotations

import io
import json
import os
import struct
import time
import zlib
from datetime import UTC, datetime

import pytest
from PIL import Image, PngImagePlugin

from nanobanana_ui.domain.request import ImageOptions, ImageRequest, Mode
from nanobanana_ui.imaging import pngmeta
from nanobanana_ui.imaging.images import load_input_image
from nanobanana_ui.imaging.pngmeta import (
    PARAMETERS_KEY,
    REQUEST_KEY,
    embed_png_text,
    parse_parameters,
    provenance_chunks,
    read_image_info,
)

A1111 = ("masterpiece, a castle on a hill, (sunset:1.2)\nat golden hour\n"
         "Negative prompt: blurry, lowres\nbad hands\n"
         "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x512, Model hash: abc123, "
         "Model: v1-5-pruned-emaonly, Version: v1.6.0")
OPTIONS = ImageOptions(aspect_ratio="16:9", size="1K", temperature=0.7, top_p=0.9, top_k=32, seed=42)


def png_bytes(size=(64, 48), mode="RGB", **save) -> bytes:
    im = Image.linear_gradient("L").resize(size).convert(mode)
    buf = io.BytesIO()
    im.save(buf, "PNG", **save)
    return buf.getvalue()


def chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(png):
        length, ctype = struct.unpack_from(">I4s", png, pos)
        out.append((ctype, png[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return out


def idat(png: bytes) -> bytes:
    return b"".join(body for ctype, body in chunks(png) if ctype == b"IDAT")


def request(prompt="a lighthouse at dusk", **kw) -> ImageRequest:
    return ImageRequest(mode=kw.pop("mode", Mode.GENERATE), model="gemini-2.5-flash-image", prompt=prompt,
                        options=kw.pop("options", OPTIONS), **kw)


def test_exports_are_pinned():
    assert sorted(pngmeta.__all__) == sorted([
        "PARAMETERS_KEY", "REQUEST_KEY", "ImageInfo", "embed_png_text", "parse_parameters", "provenance_chunks",
        "read_image_info",
    ])
    assert (PARAMETERS_KEY, REQUEST_KEY) == ("parameters", "nanobanana")


def test_parameters_text_is_a1111_style():
    created = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    made = provenance_chunks(request(), text="Here you go", finish_reason="STOP", created=created)
    assert made[PARAMETERS_KEY] == (
        "a lighthouse at dusk\nModel: gemini-2.5-flash-image, Mode: generate, Aspect ratio: 16:9, Size: 1K, "
        "Temperature: 0.7, Top-p: 0.9, Top-k: 32, Seed: 42, Variation: 0")
    record = json.loads(made[REQUEST_KEY])
    assert record == {"version": 1, "app": "Nano Banana Studio", "request": request().describe(),
                      "text": "Here you go", "finish_reason": "STOP", "created": "2026-11-27T12:00:00+00:00"}


def test_unset_options_are_omitted_and_inputs_counted():
    edit = request(mode=Mode.EDIT, options=ImageOptions(), images=(load_input_image(png_bytes(), "in.png"),))
    line = provenance_chunks(edit)[PARAMETERS_KEY].split("\n")[-1]
    assert line == "Model: gemini-2.5-flash-image, Mode: edit, Variation: 0, Input images: 1"
    assert parse_parameters(provenance_chunks(edit)[PARAMETERS_KEY]) == {
        "prompt": "a lighthouse at dusk", "mode": "edit", "model": "gemini-2.5-flash-image"}


def test_round_trip_through_pillow_and_reader_with_pixels_unchanged():
    original = png_bytes(compress_level=1)  # not Pillow's default, so a re-encode would change the IDAT bytes
    made = provenance_chunks(request())
    out = embed_png_text(original, made)
    with Image.open(io.BytesIO(out)) as im:
        assert im.text[PARAMETERS_KEY] == made[PARAMETERS_KEY]
        assert json.loads(im.text[REQUEST_KEY])["request"]["prompt"] == "a lighthouse at dusk"
        after = im.tobytes()
    with Image.open(io.BytesIO(original)) as im:
        assert im.tobytes() == after
    assert idat(out) == idat(original) and idat(out)
    info = read_image_info(out, "lighthouse.png")
    assert info.source == "nanobanana"
    assert info.parameters == made[PARAMETERS_KEY]
    assert info.request is not None and info.request["app"] == "Nano Banana Studio"
    assert info.settings == {"prompt": "a lighthouse at dusk", "mode": "generate", "model": "gemini-2.5-flash-image",
                             "aspect_ratio": "16:9", "size": "1K", "temperature": 0.7, "top_p": 0.9, "top_k": 32,
                             "seed": 42}
    assert "gemini-2.5-flash-image" in info.message


def test_chunks_go_before_the_first_idat_and_others_are_kept():
    original = png_bytes(pnginfo=_pnginfo(Software="Test"), optimize=False)
    out = embed_png_text(original, provenance_chunks(request()))
    types = [ctype for ctype, _ in chunks(out)]
    first_idat = types.index(b"IDAT")
    assert types[first_idat - 2:first_idat] == [b"iTXt", b"iTXt"]
    kept = [c for c in chunks(out) if c[0] not in (b"iTXt",)]
    assert kept == chunks(original)


def test_writing_twice_replaces_old_chunks_even_from_other_tools():
    first = embed_png_text(png_bytes(pnginfo=_pnginfo(parameters="old A1111 text")), provenance_chunks(request("one")))
    second = embed_png_text(first, provenance_chunks(request("two")))
    texts = [body.split(b"\0", 1)[0] for ctype, body in chunks(second) if ctype in (b"tEXt", b"iTXt", b"zTXt")]
    assert sorted(texts) == [b"nanobanana", b"parameters"]
    assert read_image_info(second).settings["prompt"] == "two"


def test_text_after_the_image_data_is_read_and_replaced():
    original = png_bytes()
    body = b"parameters\0" + A1111.encode("latin-1")
    late = struct.pack(">I4s", len(body), b"tEXt") + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    tail = original.rindex(b"IEND") - 4
    data = original[:tail] + late + original[tail:]
    assert read_image_info(data).source == "automatic1111"
    out = embed_png_text(data, provenance_chunks(request()))
    assert [c for c, _ in chunks(out)].count(b"tEXt") == 0
    assert read_image_info(out).source == "nanobanana"


def test_unicode_prompt_with_newlines_and_quotes_survives():
    prompt = 'Ein "Café" am Meer, 夕暮れ 🍌\nsecond line: with, commas\n"quoted" Seed: 7, Steps: 3, Mode: edit\n'
    out = embed_png_text(png_bytes(), provenance_chunks(request(prompt)))
    with Image.open(io.BytesIO(out)) as im:
        assert im.text[PARAMETERS_KEY].startswith(prompt)
    info = read_image_info(out)
    assert info.settings["prompt"] == prompt
    assert parse_parameters(info.parameters)["prompt"] == prompt  # the text alone gives it back too
    assert parse_parameters(info.parameters)["seed"] == 42


def test_large_text_is_compressed_and_still_readable():
    prompt = "a very long prompt " * 500
    out = embed_png_text(png_bytes(), provenance_chunks(request(prompt)))
    assert len(out) < len(png_bytes()) + len(prompt)
    with Image.open(io.BytesIO(out)) as im:
        assert im.text[PARAMETERS_KEY].startswith(prompt)
    assert read_image_info(out).settings["prompt"] == prompt


def test_no_key_is_written_anywhere(monkeypatch):
    key = "FAKEkey-not-a-real-key-0123456789abcdef"
    monkeypatch.setenv("GEMINI_API_KEY", key)
    monkeypatch.setenv("GOOGLE_API_KEY", key)
    made = provenance_chunks(request(), text="ok")
    out = embed_png_text(png_bytes(), made)
    assert key.encode() not in out and key not in json.dumps(made)
    assert "key" not in json.dumps(json.loads(made[REQUEST_KEY])).lower()


def test_embed_rejects_non_png_clearly():
    with pytest.raises(ValueError, match="not a PNG"):
        embed_png_text(b"GIF89a not a png", {"parameters": "x"})
    with pytest.raises(ValueError, match="damaged PNG"):
        embed_png_text(png_bytes()[:60], {"parameters": "x"})
    with pytest.raises(ValueError, match="keyword"):
        embed_png_text(png_bytes(), {"": "x"})


def test_a1111_png_gives_its_prompt_and_seed():
    data = png_bytes(pnginfo=_pnginfo(parameters=A1111))
    info = read_image_info(data, "castle.png")
    assert info.source == "automatic1111"
    assert info.parameters == A1111
    assert info.request is None
    assert info.settings == {"prompt": "masterpiece, a castle on a hill, (sunset:1.2)\nat golden hour", "seed": 1234}
    assert "AUTOMATIC1111" in info.message


def test_png_without_text_says_so_clearly():
    info = read_image_info(png_bytes(), "plain.png")
    assert (info.source, info.parameters, info.request, info.settings) == ("none", None, None, {})
    assert info.message.startswith("This image has no generation parameters")


def test_other_text_is_shown_but_not_restored():
    info = read_image_info(png_bytes(pnginfo=_pnginfo(Comment="Created with GIMP")))
    assert (info.source, info.parameters, info.settings) == ("other", "Created with GIMP", {})


def test_jpeg_with_exif_user_comment_like_a1111():
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + A1111.encode("utf-16-be")
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), "orange").save(buf, "JPEG", exif=exif)
    info = read_image_info(buf.getvalue(), "castle.jpg")
    assert info.source == "automatic1111"
    assert info.parameters == A1111
    assert info.settings["seed"] == 1234


def test_webp_with_exif_image_description():
    exif = Image.Exif()
    exif[0x010E] = "a red fox\nModel: gemini-2.5-flash-image, Mode: generate, Seed: 5, Variation: 0"
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buf, "WEBP", exif=exif)
    info = read_image_info(buf.getvalue(), "fox.webp")
    assert info.source == "nanobanana"
    assert info.settings == {"prompt": "a red fox", "model": "gemini-2.5-flash-image", "mode": "generate", "seed": 5}


@pytest.mark.parametrize("data, expected", [
    (b"", "notes.png is empty"),
    (b"hello, I am a text file\n" * 20, "notes.png is not a picture this app can open"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "notes.png looks like a PNG but is damaged"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 5, "notes.png looks like an image but is damaged"),
])
def test_bad_input_gets_a_clear_message_never_an_exception(data, expected):
    info = read_image_info(data, "notes.png")
    assert info.source == "none" and info.settings == {}
    assert info.message.startswith(expected), info.message


def test_truncated_png_keeps_what_it_can_and_says_it_is_damaged():
    out = embed_png_text(png_bytes((256, 256), "RGB"), provenance_chunks(request()))
    info = read_image_info(out[:len(out) // 2 + 200], "cut.png")
    assert info.source == "nanobanana" and info.settings["seed"] == 42
    assert "cut.png is damaged" in info.message and "truncated" in info.message
    header_cut = read_image_info(out[:30], "cut.png")
    assert header_cut.source == "none" and "damaged" in header_cut.message


@pytest.mark.slow
def test_a_4096_square_png_is_embedded_quickly(capsys):
    im = Image.frombytes("RGB", (4096, 4096), os.urandom(4096 * 4096 * 3))
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=1)
    original = buf.getvalue()
    made = provenance_chunks(request())
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        out = embed_png_text(original, made)
        runs.append(time.perf_counter() - start)
    start = time.perf_counter()
    info = read_image_info(out)
    read_s = time.perf_counter() - start
    assert idat(out) == idat(original) and info.settings["seed"] == 42
    with capsys.disabled():
        print(f"\n4096x4096 PNG ({len(original) / 1e6:.1f} MB): embed best {min(runs) * 1000:.1f} ms, "
              f"median {sorted(runs)[2] * 1000:.1f} ms; read {read_s * 1000:.1f} ms")


def _pnginfo(**texts: str) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    return info


def test_without_a_time_the_chunks_are_deterministic_and_embedding_is_idempotent():
    first = provenance_chunks(request(), text="t", finish_reason="STOP")
    assert first == provenance_chunks(request(), text="t", finish_reason="STOP")
    assert "created" not in json.loads(first[REQUEST_KEY])
    png = png_bytes()
    once = embed_png_text(png, first)
    assert embed_png_text(once, first) == once
