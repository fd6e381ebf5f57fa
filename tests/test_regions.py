"""Region edits against the emulator: masked edits and extend-to leave the original's pixels byte-identical."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import in_studio
from PIL import Image, ImageFilter, ImageOps

from nanobanana_ui.domain.costs import estimate_request_cost
from nanobanana_ui.domain.errors import InputError, StudioError
from nanobanana_ui.domain.models import get_model, known_models, pixel_size
from nanobanana_ui.domain.request import ImageOptions
from nanobanana_ui.imaging.pngmeta import read_image_info
from nanobanana_ui.imaging.region_blend import blend_answer
from nanobanana_ui.service.regions import ANCHORS, DEFAULT_FEATHER, build_region_request

MODEL = "gemini-2.5-flash-image"
ROOT = Path(__file__).resolve().parents[1]


def noise(size: tuple[int, int], mode: str, seed: int = 1) -> Image.Image:
    """A picture where every pixel differs from its neighbours, so any stray change is caught."""
    rng = np.random.default_rng(seed)
    w, h = size
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    rgb = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    if mode == "P":
        return rgb.quantize(64, dither=Image.Dither.NONE)
    if mode == "RGBA":
        return Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8))
    return rgb.convert(mode)


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def rect_mask(size: tuple[int, int], box: tuple[int, int, int, int], *, fill: int = 255) -> bytes:
    mask = Image.new("L", size, 0)
    mask.paste(fill, box)
    return encode(mask)


def band(mask_png: bytes, feather: int) -> np.ndarray:
    """True on the mask and within `feather` pixels of it (a square around each mask pixel): what may change."""
    mask = Image.open(io.BytesIO(mask_png)).convert("L").point(lambda v: 255 if v >= 128 else 0)
    grown = mask.filter(ImageFilter.MaxFilter(2 * feather + 1)) if feather else mask
    return np.asarray(grown) > 0


def assert_same_outside(out: Image.Image, original: Image.Image, may_change: np.ndarray) -> None:
    assert out.mode == original.mode and out.size == original.size
    a, b = np.asarray(out), np.asarray(original)
    keep = ~may_change
    assert np.array_equal(a[keep], b[keep]), f"{int((a[keep] != b[keep]).sum())} pixels changed outside the band"
    if original.mode == "P":
        assert out.getpalette() == original.getpalette()


def changed_share(out: Image.Image, original: Image.Image, where: np.ndarray) -> float:
    a, b = np.asarray(out), np.asarray(original)
    diff = a != b
    diff = diff.any(axis=-1) if diff.ndim == 3 else diff
    return float(diff[where].mean())


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "I;16", "L", "LA"])
def test_masked_edit_keeps_every_pixel_outside_the_mask_and_its_band(settings, emulator, mode):
    original = noise((320, 240), mode)
    mask_png = rect_mask(original.size, (120, 80, 200, 150))
    result = in_studio(settings, lambda s: s.edit(encode(original), "a red hat", mask=mask_png, model=MODEL))

    out = Image.open(result.images[0].path)
    out.load()
    assert_same_outside(out, original, band(mask_png, DEFAULT_FEATHER))
    inside = np.asarray(Image.open(io.BytesIO(mask_png))) > 0
    assert changed_share(out, original, inside) > 0.9  # the answer really went in

    # What the emulator received: the prompt framed for a mask, a crop of the box's size and the mask of that crop.
    rec = emulator.generate_requests[-1]
    region = result.request.region
    assert rec.part_kinds == ["text", "image", "image"] and rec.prompt.endswith("The change to make: a red hat")
    left, top, right, bottom = region.box
    assert left <= 120 - DEFAULT_FEATHER and top <= 80 - DEFAULT_FEATHER and right >= 200 + DEFAULT_FEATHER
    sent, sent_mask = (Image.open(io.BytesIO(data)) for data in rec.images)
    assert sent.size == sent_mask.size == (right - left, bottom - top) == region.canvas
    assert sent.mode in ("RGB", "RGBA", "L")  # 8-bit, whatever the original's depth
    expected_mask = np.zeros((bottom - top, right - left), bool)
    expected_mask[80 - top:150 - top, 120 - left:200 - left] = True
    assert np.array_equal(np.asarray(sent_mask.convert("L")) > 127, expected_mask)
    assert rec.generation_config["imageConfig"]["aspectRatio"] == result.request.options.aspect_ratio
    assert Image.open(io.BytesIO(rec.reply_images[-1])).size != region.canvas  # the model's size, scaled back


def test_rotated_jpeg_is_edited_upright_and_untouched_outside(settings, emulator, tmp_path):
    stored = noise((300, 200), "RGB")  # as stored; EXIF orientation 6 shows it rotated: 200 wide, 300 high
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    path.write_bytes(encode(stored, "JPEG", quality=90, exif=exif))
    upright = ImageOps.exif_transpose(Image.open(path))
    assert upright.size == (200, 300)
    mask_png = rect_mask((200, 300), (40, 150, 120, 260))
    result = in_studio(settings, lambda s: s.edit(path, "a sticker", mask=mask_png, feather=4, model=MODEL))
    out = Image.open(result.images[0].path)
    assert_same_outside(out, upright, band(mask_png, 4))

    with pytest.raises(InputError, match=r"is 300x200 but the image is 200x300 \(upright\)"):
        build_region_request(path, "x", model=MODEL, mask=rect_mask((300, 200), (10, 10, 50, 50)))


def test_a_non_binary_mask_is_thresholded_at_half(settings, emulator):
    original = noise((200, 160), "RGB")
    grey = np.zeros((160, 200), np.uint8)
    grey[40:80, 40:80] = 128  # counts as region
    grey[100:140, 120:180] = 127  # does not
    rgba = Image.new("RGBA", (200, 160), (255, 255, 255, 0))  # white but transparent: not region
    request = build_region_request(encode(original), "x", model=MODEL, mask=encode(Image.fromarray(grey)))
    kept = np.asarray(Image.open(io.BytesIO(request.region.mask_png)).convert("L")) > 0
    assert kept[40:80, 40:80].all() and kept.sum() == 40 * 40
    with pytest.raises(InputError, match="empty"):
        build_region_request(encode(original), "x", model=MODEL, mask=encode(rgba))
    rgba.paste((200, 0, 0, 255), (10, 20, 30, 50))  # red strokes on a clear layer (an editor's brush layer)
    rgba.paste((0, 0, 0, 127), (100, 100, 120, 120))  # mostly clear: not painted
    layer = build_region_request(encode(original), "x", model=MODEL, mask=encode(rgba))
    kept = np.asarray(Image.open(io.BytesIO(layer.region.mask_png)).convert("L")) > 0
    assert kept[20:50, 10:30].all() and kept.sum() == 20 * 30
    assert emulator.generate_requests == []


@pytest.mark.parametrize("kind,expected", [
    ("size", "is 100x80 but the image is 200x160"),
    ("empty", "is empty (no white pixels): paint the region to change in white"),
    ("full", "covers the whole image, so nothing would stay untouched: for a whole-picture change, edit without"),
    ("text", "The mask is not usable: mask is not an image (it looks like text)"),
    ("own_ratio", "already 5:4 (200x160), so there is nothing to extend"),
    ("both", "A mask and extend-to cannot be combined"),
    ("anchor_alone", "The anchor only applies when extending the canvas"),
    ("bad_anchor", "Unknown anchor 'middle'"),
    ("feather", "The feather must be a whole number of pixels from 0 to 256"),
    ("ratio_model", "does not make 1:8 images, so it cannot extend to 1:8"),
    ("ratio_text", "'wide' is not an aspect ratio: write it as W:H"),
    ("aspect_with_mask", "A masked edit keeps the image's size, so an aspect ratio does not apply"),
])
def test_bad_region_input_is_refused_before_any_call(settings, emulator, kind, expected):
    image = encode(noise((200, 160), "RGB"))
    good = rect_mask((200, 160), (20, 20, 60, 60))
    args = {
        "size": {"mask": rect_mask((100, 80), (10, 10, 20, 20))},
        "empty": {"mask": encode(Image.new("L", (200, 160), 127))},
        "full": {"mask": encode(Image.new("L", (200, 160), 200))},
        "text": {"mask": b"white = region, honest"},
        "own_ratio": {"extend_to": "5:4"},
        "both": {"mask": good, "extend_to": "16:9"},
        "anchor_alone": {"anchor": "left"},
        "bad_anchor": {"extend_to": "16:9", "anchor": "middle"},
        "feather": {"mask": good, "feather": 999},
        "ratio_model": {"extend_to": "1:8"},
        "ratio_text": {"extend_to": "wide"},
        "aspect_with_mask": {"mask": good, "options": ImageOptions(aspect_ratio="21:9")},
    }[kind]

    async def scenario(studio):
        with pytest.raises(StudioError) as caught:
            await studio.edit(image, "make it nicer", model=MODEL, **args)
        return caught.value

    error = in_studio(settings, scenario)
    assert expected in error.message and error.exit_code == 2 and "\n" not in error.message
    assert emulator.generate_requests == []


def answer_size(model: str, ratio: str, size: str | None = None) -> tuple[int, int]:
    """The size the emulator answers at: the model's pixel table (per model once pixel_size takes the model)."""
    if "model" in inspect.signature(pixel_size).parameters:
        return pixel_size(model, ratio, size)
    return pixel_size(ratio, size or "1K")


@functools.cache  # one answer per size: the sweeps below ask for the same few sizes hundreds of times
def synthetic_answer(size: tuple[int, int]) -> bytes:
    return encode(Image.new("RGB", size, (250, 10, 200)))


def test_the_extend_sweep_covers_every_ratio_the_models_offer():
    assert len({ratio for spec in known_models() for ratio in spec.aspect_ratios}) >= 14


# Every model x ratio x anchor (one test per model, so the workers share the sweep): RGB in the inner loop; the
# palette and 16-bit sweeps (the same placements, other pixel layouts) with the slow tests.
@pytest.mark.parametrize("model", [spec.id for spec in known_models()])
@pytest.mark.parametrize("mode", ["RGB", pytest.param("P", marks=pytest.mark.slow),
                                  pytest.param("I;16", marks=pytest.mark.slow)])
def test_extend_to_every_ratio_and_anchor_keeps_the_original_in_place(mode, model):
    original = noise((150, 110), mode)
    cases = [(ratio, anchor) for ratio in get_model(model).aspect_ratios for anchor in ANCHORS]
    assert cases
    for ratio, anchor in cases:
        request = build_region_request(encode(original), "more sky", model=model, extend_to=ratio, anchor=anchor)
        region = request.region
        a, b = (int(x) for x in ratio.split(":"))
        width, height = region.canvas
        assert abs(width * b - height * a) < max(a, b)  # the ratio, to the pixel (one side rounded up)
        assert min(width - original.width, height - original.height) == 0  # grows on one axis only ...
        assert (width, height) != original.size  # ... and does grow
        out = Image.open(io.BytesIO(blend_answer(region, synthetic_answer(answer_size(model, ratio)))))
        left, top, right, bottom = region.box
        assert out.mode == original.mode and out.size == region.canvas
        assert np.array_equal(np.asarray(out.crop(region.box)), np.asarray(original)), (ratio, anchor)
        grows_sideways = width > original.width
        expected_x = {"left": 0, "right": width - original.width}.get(anchor, (width - original.width) // 2)
        expected_y = {"top": 0, "bottom": height - original.height}.get(anchor, (height - original.height) // 2)
        assert (left, top) == ((expected_x, 0) if grows_sideways else (0, expected_y)), (ratio, anchor)
        assert request.options.aspect_ratio == ratio


def test_extend_sends_the_canvas_and_its_mask(settings, emulator):
    original = noise((160, 120), "RGBA")
    result = in_studio(settings, lambda s: s.edit(encode(original), "a beach", extend_to="16:9", anchor="right",
                                                  feather=0, model=MODEL))
    region = result.request.region
    assert region.canvas == (214, 120) and region.box == (54, 0, 214, 120)
    rec = emulator.generate_requests[-1]
    canvas, hint = (Image.open(io.BytesIO(data)) for data in rec.images)
    assert canvas.size == hint.size == (214, 120)
    assert np.array_equal(np.asarray(canvas.convert("RGBA"))[:, 54:], np.asarray(original))
    assert (np.asarray(hint.convert("L"))[:, :54] == 255).all() and (np.asarray(hint.convert("L"))[:, 54:] == 0).all()
    assert rec.generation_config["imageConfig"]["aspectRatio"] == "16:9" and "Extend this picture" in rec.prompt
    out = Image.open(result.images[0].path)
    assert out.size == (214, 120) and out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[:, 54:], np.asarray(original))
    assert (np.asarray(out)[:, :54, 3] == 255).all()  # the new area is opaque, filled by the model


@pytest.mark.parametrize("model,size", [(spec.id, size) for spec in known_models() for size in spec.sizes])
def test_every_models_pixel_table_is_scaled_back(settings, emulator, model, size):
    settings = dataclasses.replace(settings, timeout_s=120)  # the emulator draws a 4K answer: slow on a busy machine
    original = noise((240, 180), "RGB")
    mask_png = rect_mask(original.size, (90, 60, 150, 120))
    options = ImageOptions(size=size)
    result = in_studio(settings, lambda s: s.edit(encode(original), "a bird", mask=mask_png, model=model,
                                                  options=options))
    rec = emulator.generate_requests[-1]
    ratio = rec.generation_config["imageConfig"]["aspectRatio"]
    answered = Image.open(io.BytesIO(rec.reply_images[-1])).size
    assert answered == answer_size(model, ratio, size) and answered != result.request.region.canvas
    out = Image.open(result.images[0].path)
    assert_same_outside(out, original, band(mask_png, DEFAULT_FEATHER))
    assert changed_share(out, original, np.asarray(Image.open(io.BytesIO(mask_png))) > 0) > 0.9


def test_mask_crop_and_feather_are_in_the_cache_key(settings, emulator):
    image = encode(noise((200, 160), "RGB"))
    mask_a = rect_mask((200, 160), (50, 50, 90, 90))
    mask_b = rect_mask((200, 160), (50, 50, 91, 90))

    async def scenario(studio):
        first = await studio.edit(image, "a star", mask=mask_a, model=MODEL)
        again = await studio.edit(image, "a star", mask=mask_a, model=MODEL)
        other_mask = await studio.edit(image, "a star", mask=mask_b, model=MODEL)
        other_feather = await studio.edit(image, "a star", mask=mask_a, feather=3, model=MODEL)
        return first, again, other_mask, other_feather

    first, again, other_mask, other_feather = in_studio(settings, scenario)
    assert len(emulator.generate_requests) == 3  # the repeat was answered by the cache, with no request
    assert again.cached and again.cost_usd == 0 and not other_mask.cached and not other_feather.cached
    assert again.images[0].sha256 == first.images[0].sha256
    assert first.request.region.mask_sha256 != other_mask.request.region.mask_sha256

    # The same crop of two originals that differ only outside it: still two different requests.
    base = noise((200, 160), "RGB")
    changed = base.copy()
    changed.putpixel((199, 159), (1, 2, 3))
    one = build_region_request(encode(base), "a star", model=MODEL, mask=mask_a)
    two = build_region_request(encode(changed), "a star", model=MODEL, mask=mask_a)
    assert one.region.box[2] < 199 and one.images[0].sha256 == two.images[0].sha256
    assert one.cache_key() != two.cache_key()


def test_estimate_counts_the_crop_and_mask_sent(settings, emulator):
    image = encode(noise((2000, 1500), "RGB"))
    request = build_region_request(image, "a moon", model=MODEL, mask=rect_mask((2000, 1500), (100, 100, 300, 260)))
    spec = get_model(MODEL)
    assert len(request.images) == 2 and (request.images[0].width, request.images[0].height) == request.region.canvas
    assert request.region.canvas[0] < 500  # a crop, not the 2000x1500 original
    result = in_studio(settings, lambda s: s.run(request))
    rec = emulator.generate_requests[-1]
    assert rec.part_kinds == ["text", "image", "image"]
    # The emulator counts prompt tokens as Gemini does (text, plus a fixed count per image sent): the estimate matches.
    assert result.usage.prompt_tokens == len(request.model_prompt()) // 4 + 1 + 2 * spec.input_image_tokens
    expected = spec.image_price(None) + result.usage.prompt_tokens * spec.price.input / 1e6
    assert estimate_request_cost(spec, request) == pytest.approx(expected, abs=2e-6)


def test_provenance_and_history_keep_the_mask(settings, emulator):
    image = encode(noise((200, 160), "P"))
    mask_png = rect_mask((200, 160), (30, 40, 90, 100))

    async def scenario(studio):
        result = await studio.edit(image, "a lamp", mask=mask_png, feather=5, model=MODEL)
        entry = studio.history.page(limit=1)[0]
        return result, entry, studio.history.mask_path(entry), studio.history.verify()

    result, entry, mask_path, problems = in_studio(settings, scenario)
    region = result.request.region
    info = read_image_info(result.images[0].path.read_bytes())
    assert f"Mask sha256: {region.mask_sha256}" in info.parameters and "Feather: 5" in info.parameters
    assert f'Crop box: "{",".join(map(str, region.box))}"' in info.parameters
    assert info.request["request"]["region"]["crop_box"] == list(region.box)
    assert info.settings["feather"] == 5 and info.settings["mask_sha256"] == region.mask_sha256
    # The history keeps the mask by content, so the request can be rebuilt exactly (same cache key).
    assert entry.region["mask_sha256"] == region.mask_sha256 and entry.input_hashes == (region.source_sha256,)
    assert hashlib.sha256(mask_path.read_bytes()).hexdigest() == region.mask_sha256 and problems == []
    again = build_region_request(image, entry.prompt, model=entry.model, mask=mask_path, options=ImageOptions(
        **entry.options), feather=entry.region["feather"])  # Re-run: the recorded options, the kept mask
    assert again.cache_key() == result.request.cache_key()

    async def from_png_info(studio):
        return studio.history.mask_file(info.settings["mask_sha256"]), studio.history.mask_file("../../etc")

    assert in_studio(settings, from_png_info) == (mask_path, None)

    async def delete(studio):
        studio.history.delete(entry.id)
        return studio.history.verify()

    assert in_studio(settings, delete) == [] and not mask_path.exists()


@pytest.mark.slow  # CLI subprocesses
def test_cli_masked_edit_and_refusal(emulator, tmp_path):
    image, mask, small = tmp_path / "photo.png", tmp_path / "mask.png", tmp_path / "small.png"
    original = noise((240, 180), "RGB")
    image.write_bytes(encode(original))
    mask.write_bytes(rect_mask((240, 180), (100, 60, 160, 120)))
    small.write_bytes(rect_mask((24, 18), (1, 1, 5, 5)))
    env = {"PATH": "/usr/bin:/bin", "NANOBANANA_HOME": str(tmp_path / "home"), "GEMINI_API_KEY": "test-key",
           "NANOBANANA_BASE_URL": emulator.base_url, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "nanobanana_ui", "edit", str(image), "a kite", "--json", "--model", MODEL]
    done = subprocess.run([*command, "--mask", str(mask), "--feather", "4"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout.splitlines()[0])
    assert record["region"]["feather"] == 4 and record["region"]["mask_sha256"]
    assert (record["width"], record["height"]) == (240, 180)
    assert_same_outside(Image.open(record["path"]), original, band(mask.read_bytes(), 4))
    refused = subprocess.run([*command, "--mask", str(small)], env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [
        "error: The mask small.png is 24x18 but the image is 240x180 (upright): paint the mask on this image, or "
        "resize it to 240x180."]
    assert len(emulator.generate_requests) == 1


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_png_writer_joins_bands_into_one_valid_png(mode):
    import struct
    import zlib

    from nanobanana_ui.imaging.pngwrite import deflate_rows, write_png

    picture = noise((97, 61), mode)
    pixels = np.asarray(picture)
    bands = [deflate_rows(pixels[:20]), deflate_rows(pixels[20:21]), deflate_rows(pixels[21:])]
    icc = b"not really a profile, but kept byte for byte"
    png = write_png(mode, picture.size, bands, icc_profile=icc)
    decoded = Image.open(io.BytesIO(png))
    assert decoded.mode == mode and np.array_equal(np.asarray(decoded), pixels)
    assert decoded.info["icc_profile"] == icc
    idat = png[png.index(b"IDAT") + 4:]
    (length,) = struct.unpack(">I", png[png.index(b"IDAT") - 4:png.index(b"IDAT")])
    raw = zlib.decompress(idat[:length])  # zlib checks the combined Adler-32 here
    assert len(raw) == 61 * (1 + 97 * len(mode))
    with pytest.raises(ValueError, match="do not cover"):
        write_png(mode, picture.size, bands[:2])


@pytest.mark.parametrize("columns", [(0, 97), (0, 1), (10, 40), (96, 97), (0, 30), (50, 97)])
def test_png_writer_rows_framed_ahead_then_filled(columns):
    from nanobanana_ui.imaging.pngwrite import deflate_rows, fill_rows, frame_rows, write_png

    before = np.asarray(noise((97, 61), "RGB"))
    after = before.copy()
    x0, x1 = columns
    after[20:40, x0:x1] = np.asarray(noise((x1 - x0, 20), "RGB", seed=9))
    frame = frame_rows(before[20:40], x0, x1)  # made from the rows before the change, as during the call
    png = write_png("RGB", (97, 61), [deflate_rows(after[:20]), *fill_rows(frame, after[20:40]),
                                      deflate_rows(after[40:])])
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), after)


def test_an_extend_beyond_the_pixel_limit_is_refused(emulator):
    flat = encode(Image.new("L", (5000, 4000), 90))
    with pytest.raises(InputError, match=r"makes a 32000x4000 canvas, over the 90 megapixel limit: choose a ratio"):
        build_region_request(flat, "a long wall", model="gemini-3.1-flash-image", extend_to="8:1")
    assert emulator.generate_requests == []


@pytest.mark.parametrize("corner", [(0, 0), (239, 179), (120, 0), (0, 179)])
def test_a_one_pixel_mask_at_an_edge_is_edited_and_only_its_band_changes(settings, corner):
    """Issue 19: a region of one pixel touching the top or bottom edge crashed ("cannot reshape array of size 0")."""
    original = noise((240, 180), "RGB")
    mask = Image.new("L", (240, 180), 0)
    mask.putpixel(corner, 255)
    mask_png = encode(mask)
    result = in_studio(settings, lambda s: s.edit(encode(original), "a tiny star", mask=mask_png, feather=0,
                                                  model=MODEL))
    out = Image.open(result.images[0].path)
    assert out.size == (240, 180)
    assert_same_outside(out, original, band(mask_png, 0))
