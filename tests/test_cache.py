"""The result cache: a repeat is free and makes no call; failures are never cached; each image is stored once."""

from __future__ import annotations

import os

import pytest
from conftest import in_studio, png_bytes

from nanobanana_ui.domain.errors import ServerError, TextOnlyError
from nanobanana_ui.domain.request import ImageOptions, ImageRequest, Mode
from nanobanana_ui.emulator import Fault


def test_repeat_is_a_hit_with_no_call_and_no_cost(settings, emulator):
    first = in_studio(settings, lambda s: s.generate("a red fox"))
    second = in_studio(settings, lambda s: s.generate("a red fox"))  # a new Studio: the cache is on disk
    assert len(emulator.generate_requests) == 1
    assert second.cached and not first.cached
    assert second.cost_usd == 0.0 and second.saved_usd == pytest.approx(first.cost_usd)
    assert second.images[0].sha256 == first.images[0].sha256
    assert second.images[0].path != first.images[0].path  # a new file for the new request...
    assert second.images[0].path.read_bytes() == first.images[0].path.read_bytes()
    assert second.text == first.text and second.finish_reason == first.finish_reason


def test_image_bytes_are_stored_once_in_the_cache_and_never_shared_with_an_output(settings, emulator):
    first = in_studio(settings, lambda s: s.generate("stored once"))
    second = in_studio(settings, lambda s: s.generate("stored once"))
    data = first.images[0].path.read_bytes()
    blobs = [p for p in settings.cache_dir.rglob("*") if p.is_file() and p.read_bytes() == data]
    kept = [p for p in (settings.home / "images").rglob("*") if p.is_file() and p.read_bytes() == data]
    assert len(blobs) == 1 and len(kept) == 1  # once in the cache, once in the history (images/<sha>)
    files = [first.images[0].path, second.images[0].path, *blobs, *kept]
    assert len({os.stat(p).st_ino for p in files}) == 4 and all(os.stat(p).st_nlink == 1 for p in files)


@pytest.mark.parametrize("change", [
    {"prompt": "a red fox!"},
    {"model": "gemini-3-pro-image-preview"},
    {"options": ImageOptions(seed=1)},
    {"options": ImageOptions(variation=1)},
    {"options": ImageOptions(temperature=0.5)},
    {"options": ImageOptions(aspect_ratio="16:9")},
    {"options": ImageOptions(with_text=False)},
])
def test_anything_that_changes_the_request_is_a_miss(settings, emulator, change):
    in_studio(settings, lambda s: s.generate("a red fox"))
    prompt = change.pop("prompt", "a red fox")
    in_studio(settings, lambda s: s.generate(prompt, **change))
    assert len(emulator.generate_requests) == 2


def test_key_covers_the_content_of_input_images(settings, emulator):
    red, blue = png_bytes(color=(255, 0, 0)), png_bytes(color=(0, 0, 255))
    in_studio(settings, lambda s: s.edit(red, "flip it"))
    in_studio(settings, lambda s: s.edit(blue, "flip it"))
    in_studio(settings, lambda s: s.edit(red, "flip it"))
    assert len(emulator.generate_requests) == 2


def test_cache_key_never_contains_the_key_and_is_stable(settings):
    request = ImageRequest(mode=Mode.GENERATE, model="m", prompt="p")
    assert request.cache_key() == ImageRequest(mode=Mode.GENERATE, model="m", prompt="p").cache_key()
    assert settings.api_key not in request.cache_key()


@pytest.mark.parametrize("fault, error", [(Fault.overloaded(), ServerError), (Fault.text_only("Hm?"), TextOnlyError)])
def test_failures_and_no_image_outcomes_are_not_cached(settings, emulator, fault, error):
    emulator.fail_next(fault)
    with pytest.raises(error):
        in_studio(settings, lambda s: s.generate("try again"))
    result = in_studio(settings, lambda s: s.generate("try again"))
    assert not result.cached
    assert len(emulator.generate_requests) == 2


def test_no_cache_bypasses_reads_but_still_stores(settings, emulator):
    in_studio(settings, lambda s: s.generate("fresh"))
    forced = in_studio(settings, lambda s: s.generate("fresh", use_cache=False))
    assert not forced.cached and len(emulator.generate_requests) == 2
    assert in_studio(settings, lambda s: s.generate("fresh")).cached


def test_a_damaged_cached_image_is_fetched_again(settings, emulator):
    first = in_studio(settings, lambda s: s.generate("fragile"))
    from nanobanana_ui.storage.cache import ResultCache

    cache = ResultCache(settings.cache_dir, settings.cache_size_bytes)
    blob = cache.image_path(first.images[0].sha256)
    cache.close()
    assert blob is not None
    with open(blob, "r+b") as handle:  # the cache's own copy damaged (the saved output is a file of its own)
        handle.seek(100)
        handle.write(b"\x00\x01\x02")
    again = in_studio(settings, lambda s: s.generate("fragile"))
    assert not again.cached
    assert len(emulator.generate_requests) == 2


def test_cache_size_is_bounded(emulator, tmp_path):
    from nanobanana_ui.storage.cache import ResultCache

    cache = ResultCache(tmp_path / "c", size_limit=200_000)
    try:
        for i in range(40):
            cache.store(f"k{i}", [(os.urandom(20_000), "image/png")], {"text": "", "finish_reason": "STOP",
                                                                      "usage": {}, "cost_usd": 0.04})
        assert cache._cache.volume() < 400_000
        assert cache.lookup("k0") is None and cache.lookup("k39") is not None
    finally:
        cache.close()


def test_an_unreadable_image_from_the_api_is_a_service_error_and_not_cached(settings):
    import asyncio

    from nanobanana_ui.backends.gemini_wire import BackendReply
    from nanobanana_ui.domain.errors import BadResponseError
    from nanobanana_ui.domain.request import Usage
    from nanobanana_ui.service.studio import Studio

    class GarbageBackend:  # a relay that mangles images
        async def generate(self, request, *, observer=None):
            return BackendReply(((b"<html>not a png</html>", "image/png"),), "", "STOP", Usage())

        async def list_image_models(self):
            return ()

        async def aclose(self):
            pass

    async def scenario():
        async with Studio(settings, backend=GarbageBackend()) as studio:
            with pytest.raises(BadResponseError, match="cannot be read"):
                await studio.generate("mangled")
            return studio.cache.lookup(studio.build_request(Mode.GENERATE, "mangled").cache_key())

    assert asyncio.run(scenario()) is None
    assert not settings.output_dir.exists() or not any(settings.output_dir.iterdir())
