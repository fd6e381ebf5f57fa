"""Model discovery: one models.list() per key in the background, kept a day on disk, the registry as the fallback."""

from __future__ import annotations

import asyncio
import json

from conftest import TEST_KEY, in_studio

from nanobanana_ui.backends.discovery import LISTING_TTL_S, RETRY_AFTER_S
from nanobanana_ui.domain.config import Settings
from nanobanana_ui.domain.models import known_models
from nanobanana_ui.emulator import Fault, GeminiEmulator
from nanobanana_ui.service.studio import Studio

NB21 = "gemini-nano-banana-2.1"
NB2, PRO, LITE, FLASH = ("gemini-3.1-flash-image", "gemini-3-pro-image", "gemini-3.1-flash-lite-image",
                         "gemini-2.5-flash-image")
NEW = "gemini-4-flash-image"  # an image model the registry does not know yet
TEXT = "gemini-3-flash"  # a text model: never offered as an image model


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def listings(emulator: GeminiEmulator) -> list:
    return [r for r in emulator.requests if r.method == "GET" and r.path == "/v1beta/models"]


def discovered(settings: Settings, clock: Clock) -> tuple:
    """available_models() before and after this key's listing arrived."""

    async def scenario(studio: Studio):
        before = studio.available_models()
        assert studio.discovery.wait(60)
        return before, studio.available_models()

    return in_studio(settings, scenario, clock=clock)


def test_a_key_that_lacks_pro_sees_what_it_has_then_unknown_image_models(settings, emulator):
    emulator.models = (*emulator.models, NEW, TEXT)
    emulator.allow_models(TEST_KEY, [NB21, NB2, LITE, FLASH, NEW, TEXT])
    before, after = discovered(settings, Clock())
    assert not before.listed and before.ids == tuple(s.id for s in known_models())  # until it answers: the registry
    assert "has not arrived yet" in before.notes[0]
    assert after.listed and after.ids == (NB21, NB2, LITE, FLASH, NEW)  # registry first, then the unknown image model
    [hidden] = after.notes
    assert hidden.startswith(f"Nano Banana Pro ({PRO}) is hidden: this key's model list does not include it")
    new = after.models[-1]
    assert not new.known and new.price is None and new.max_input_images == 3 and new.sizes == ("1K",)
    [listing] = listings(emulator)
    assert listing.api_key == TEST_KEY and emulator.generate_requests == []
    # On disk under the key's salted partition hash: neither the file's name nor its content holds the key.
    [stored] = (settings.home / "models").iterdir()
    assert stored.name.startswith("k") and TEST_KEY not in stored.name and TEST_KEY not in stored.read_text()
    assert json.loads(stored.read_text())["models"] == [NB21, NB2, LITE, FLASH, NEW, TEXT]


def test_listing_failure_falls_back_to_the_registry_and_retries_later(settings, emulator):
    emulator.fail_next_listing(Fault.server_error(500))
    clock = Clock()

    async def scenario(studio: Studio):
        studio.available_models()
        studio.discovery.wait(60)
        failed = studio.available_models()  # the failure is known; no second listing so soon
        assert studio.discovery.wait(60) and len(listings(emulator)) == 1
        clock.now += RETRY_AFTER_S + 1
        studio.available_models()
        studio.discovery.wait(60)
        return failed, studio.available_models()

    failed, later = in_studio(settings, scenario, clock=clock)
    assert not failed.listed and failed.ids == tuple(s.id for s in known_models())
    assert "could not be read" in failed.notes[0] and "internal error" in failed.notes[0]
    assert later.listed and len(listings(emulator)) == 2
    assert not (settings.home / "models").exists() or len(list((settings.home / "models").iterdir())) == 1


def test_the_listing_is_kept_for_a_day_across_restarts(settings, emulator):
    clock = Clock()
    discovered(settings, clock)
    clock.now += LISTING_TTL_S - 60  # a new process a day later, less a minute: the stored answer, no call
    before, _ = discovered(settings, clock)
    assert before.listed and len(listings(emulator)) == 1
    clock.now += 120  # more than a day: listed again, in the background
    before, after = discovered(settings, clock)
    assert not before.listed and after.listed and len(listings(emulator)) == 2


def test_another_key_or_endpoint_has_its_own_listing(settings, emulator):
    emulator.allow_models("other-key", [NB2])
    clock = Clock()
    _, mine = discovered(settings, clock)
    _, theirs = discovered(settings.with_overrides(api_key="other-key"), clock)
    assert mine.ids == tuple(s.id for s in known_models()) and theirs.ids == (NB2,)
    assert [r.api_key for r in listings(emulator)] == [TEST_KEY, "other-key"]
    with GeminiEmulator() as relay:  # the same key through another endpoint: listed there, not reused
        discovered(settings.with_overrides(base_url=relay.base_url), clock)
        assert len(listings(relay)) == 1


def test_discovery_never_delays_a_request(settings, emulator):
    """The listing is held (the emulator waits 2 s before answering it) while a request is made and answered."""
    emulator.fail_next_listing(Fault.delay(2))

    async def scenario(studio: Studio):
        first = studio.available_models()
        while not listings(emulator):  # the listing has arrived at the server, and is being held there
            await asyncio.sleep(0.02)
        result = await studio.generate("a fox")
        [listing] = listings(emulator)
        status = listing.status
        # Let the held listing end before the Studio closes its client (else its socket outlives the test).
        assert await asyncio.to_thread(studio.discovery.wait, 60)
        return first, result, status

    first, result, listing_status = in_studio(settings, scenario)
    assert not first.listed and result.images
    assert listing_status == 0  # not yet answered when the request was done


def test_a_listing_without_any_image_model_keeps_the_registry(settings, emulator):
    emulator.models = (*emulator.models, TEXT)
    emulator.allow_models(TEST_KEY, [TEXT])  # e.g. a relay that lists only text models
    _, after = discovered(settings, Clock())
    assert not after.listed and after.ids == tuple(s.id for s in known_models())
    assert "names no image model" in after.notes[0] and len(listings(emulator)) == 1
