"""The offline Gemini emulator, driven by the real google-genai client over loopback."""

from __future__ import annotations

import asyncio
import base64
import http.client
import io
import json
import random
import re
import time

import httpx2
import pytest
from google import genai
from google.genai import errors, types
from PIL import Image

from nanobanana_ui.backends.tls import shared_client_args
from nanobanana_ui.domain.models import get_model, pixel_size
from nanobanana_ui.emulator import OFFLINE_API_KEY, Fault, GeminiEmulator, busiest_window, shared_emulator

FLASH = "gemini-2.5-flash-image"
PRO = "gemini-3-pro-image"
NB2 = "gemini-3.1-flash-image"
LITE = "gemini-3.1-flash-lite-image"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def emu(emulator):
    """The emulator (conftest's clean_env keeps the SDK from reading keys or Vertex switches from the environment)."""
    return emulator


@pytest.fixture
def make_client():
    clients: list[genai.Client] = []

    def make(emulator: GeminiEmulator, api_key: str = "k", timeout_ms: int | None = 10_000) -> genai.Client:
        client_args, async_client_args = shared_client_args()  # not a new CA bundle load per client
        options = types.HttpOptions(api_version="v1beta", base_url=emulator.base_url, timeout=timeout_ms,
                                    client_args=client_args, async_client_args=async_client_args)
        clients.append(genai.Client(api_key=api_key, vertexai=False, http_options=options))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(emu, make_client):
    return make_client(emu)


def noise_png(size=(300, 200), seed=1) -> bytes:
    """A PNG of random pixels: its base64 is sure to contain URL-safe-only characters."""
    rng = random.Random(seed)
    img = Image.frombytes("RGB", size, bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3)))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def solid(fmt="PNG", size=(64, 48), color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return buf.getvalue()


def config(ratio=None, size=None, **kw) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(image_config=types.ImageConfig(aspect_ratio=ratio, image_size=size), **kw)


def answer_images(resp) -> list[Image.Image]:
    out = []
    for part in resp.parts or []:
        if part.inline_data is not None and not part.thought:
            assert part.inline_data.data.startswith(PNG_MAGIC)
            assert part.inline_data.mime_type == "image/png"
            out.append(Image.open(io.BytesIO(part.inline_data.data)))
    return out


def raw_post(emulator: GeminiEmulator, path: str, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    host, port = emulator.base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


# --- successful generation -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("model", "ratio", "size", "expected"), [
    (FLASH, "16:9", "1K", (1344, 768)),
    (FLASH, None, None, (1024, 1024)),
    (PRO, "16:9", "2K", (2752, 1536)),  # Gemini 3's own table (FACTS), not 2.5's sizes scaled
    (PRO, "1:1", "4K", (4096, 4096)),
    (PRO, "21:9", "1K", (1584, 672)),
    (NB2, "9:16", "512", (384, 688)),
    (NB2, "16:9", "512", (688, 384)),
    (NB2, "16:9", "1K", (1376, 768)),
    (NB2, "16:9", "4K", (5504, 3072)),
    (NB2, "1:8", "1K", pixel_size(NB2, "1:8", "1K")),
    (LITE, "16:9", None, (1376, 768)),
])
def test_generate_returns_png_of_exact_size(client, emu, model, ratio, size, expected):
    resp = client.models.generate_content(model=model, contents="a banana in space", config=config(ratio, size))
    [img] = answer_images(resp)
    assert img.size == expected
    assert any(p.text for p in resp.parts)  # responseModalities absent: text and image
    spec = get_model(model)
    usage = resp.usage_metadata
    image_tokens = [d.token_count for d in usage.candidates_tokens_details if d.modality == types.MediaModality.IMAGE]
    assert image_tokens == [spec.output_image_tokens[size or spec.default_size]]
    thinking = usage.thoughts_token_count or 0  # Gemini 3 models always think; 2.5 Flash does not
    assert (thinking > 0) == spec.thoughts
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count + thinking
    assert resp.model_version == model and resp.response_id
    assert resp.candidates[0].finish_reason == types.FinishReason.STOP
    [rec] = emu.generate_requests
    assert (rec.model, rec.prompt, rec.part_kinds, rec.api_key) == (model, "a banana in space", ["text"], "k")
    assert rec.reply_images == [p.inline_data.data for p in resp.parts if p.inline_data]


def test_same_seed_same_picture_and_no_seed_a_new_one_each_time(client):
    def render(prompt, seed=None):
        cfg = types.GenerateContentConfig(seed=seed)
        return answer_images(client.models.generate_content(model=FLASH, contents=prompt, config=cfg))[0]

    fox, whale = render("a red fox", seed=7), render("a blue whale", seed=7)
    assert fox.tobytes() == render("a red fox", seed=7).tobytes()
    assert fox.getpixel((5, 1000)) != whale.getpixel((5, 1000))  # the background itself, away from the text
    assert render("a red fox").getpixel((5, 1000)) != render("a red fox").getpixel((5, 1000))


def test_generation_config_is_recorded_and_image_only_modality_obeyed(client, emu):
    cfg = config("21:9", "1K", temperature=0.5, top_p=0.9, top_k=32, seed=42, response_modalities=["IMAGE"],
                 system_instruction="You are a painter.")
    resp = client.models.generate_content(model=FLASH, contents="wide landscape", config=cfg)
    assert [p.text for p in resp.parts if p.text] == []
    assert answer_images(resp)[0].size == (1536, 672)
    gc = emu.generate_requests[0].generation_config
    assert (gc["temperature"], gc["topP"], gc["topK"], gc["seed"]) == (0.5, 0.9, 32, 42)
    assert gc["responseModalities"] == ["IMAGE"]
    assert gc["imageConfig"] == {"aspectRatio": "21:9", "imageSize": "1K"}
    assert emu.generate_requests[0].prompt == "wide landscape"  # the system instruction is not the prompt


def test_edit_records_exact_input_bytes_and_changes_the_image(client, emu):
    source = noise_png((300, 200))
    resp = client.models.generate_content(
        model=FLASH, contents=[types.Part.from_bytes(data=source, mime_type="image/png"), "add a hat"])
    [rec] = emu.generate_requests
    assert rec.images == [source]  # byte for byte: URL-safe base64 decoded right
    assert rec.image_mime_types == ["image/png"] and rec.part_kinds == ["image", "text"]
    assert rec.prompt == "add a hat"
    [img] = answer_images(resp)
    assert img.size == (1248, 832)  # no aspectRatio: the input's 3:2 is kept
    usage = resp.usage_metadata
    assert {d.modality: d.token_count for d in usage.prompt_tokens_details}[types.MediaModality.IMAGE] == 258


def test_edit_visibly_changes_the_input(client):
    grey = (128, 128, 128)
    resp = client.models.generate_content(
        model=FLASH, contents=["make it pop", types.Part.from_bytes(data=solid(color=grey), mime_type="image/png")],
        config=types.GenerateContentConfig(seed=1))  # unseeded tints are random, and some lie within 40 of grey
    [img] = answer_images(resp)
    assert img.size == (1184, 864)  # 64x48 is 4:3
    pixel = img.convert("RGB").getpixel((img.width // 2, img.height - img.height // 8))  # below the text, inside
    assert sum(abs(a - b) for a, b in zip(pixel, grey, strict=True)) > 40


def test_compose_records_every_image_in_order(client, emu):
    images = [solid("PNG", color=(255, 0, 0)), solid("JPEG", color=(0, 255, 0)), noise_png(seed=7)]
    contents = ["put them together", types.Part.from_bytes(data=images[0], mime_type="image/png"),
                types.Part.from_bytes(data=images[1], mime_type="image/jpeg"),
                types.Part.from_bytes(data=images[2], mime_type="image/png")]
    resp = client.models.generate_content(model=PRO, contents=contents, config=config("4:3", "1K"))
    [rec] = emu.generate_requests
    assert rec.part_kinds == ["text", "image", "image", "image"]
    assert rec.images == images
    assert rec.image_mime_types == ["image/png", "image/jpeg", "image/png"]
    [img] = answer_images(resp)
    assert img.size == (1200, 896)
    prompt_tokens = {d.modality: d.token_count for d in resp.usage_metadata.prompt_tokens_details}
    assert prompt_tokens[types.MediaModality.IMAGE] == 3 * 560
    assert img.convert("RGB").getpixel((img.width // 4, img.height * 3 // 8))[:2] == (255, 0)  # red tile top left


def test_prompt_is_the_last_user_turn_and_history_image_is_edited(emu, make_client):
    client = make_client(emu)
    chat = client.chats.create(model=FLASH)
    first = answer_images(chat.send_message(["make a square", types.Part.from_bytes(data=solid(size=(90, 160)),
                                                                                    mime_type="image/png")]))
    second = answer_images(chat.send_message("now make it blue"))
    last = emu.generate_requests[-1]
    assert last.prompt == "now make it blue" and last.images == [] and last.part_kinds == ["text"]
    assert [c["role"] for c in last.body["contents"]] == ["user", "model", "user"]
    assert first[0].size == second[0].size == (768, 1344)  # the history image (9:16) is what gets edited


# --- faults --------------------------------------------------------------------------------------------------------

def rpc(detail_type: str, exc: errors.APIError) -> list[dict]:
    return [d for d in exc.details["error"].get("details", []) if d["@type"].endswith(detail_type)]


def test_rate_limit_carries_retry_info_quota_and_retry_after(client, emu):
    emu.fail_next(Fault.rate_limit(retry_delay="12.2s"))
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=FLASH, contents="x")
    exc = info.value
    assert (exc.code, exc.status) == (429, "RESOURCE_EXHAUSTED")
    assert rpc("RetryInfo", exc) == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12.2s"}]
    [violation] = rpc("QuotaFailure", exc)[0]["violations"]
    assert violation["quotaId"] == "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
    assert violation["quotaDimensions"] == {"location": "global", "model": FLASH}
    assert exc.response.headers["retry-after"] == "13"
    assert len(emu.generate_requests) == 1  # faulted requests are recorded too
    assert answer_images(client.models.generate_content(model=FLASH, contents="x"))  # the queue is empty again


def test_daily_quota_has_no_retry_info(client, emu):
    emu.fail_next(Fault.daily_quota())
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=FLASH, contents="x")
    assert info.value.code == 429 and rpc("RetryInfo", info.value) == []
    assert rpc("QuotaFailure", info.value)[0]["violations"][0]["quotaId"].startswith("GenerateRequestsPerDay")
    assert "retry-after" not in info.value.response.headers


@pytest.mark.parametrize(("fault", "cls", "code", "status", "text"), [
    (Fault.server_error(), errors.ServerError, 500, "INTERNAL", "internal error"),
    (Fault.server_error(502), errors.ServerError, 502, "Bad Gateway", "502"),
    (Fault.server_error(504), errors.ServerError, 504, "DEADLINE_EXCEEDED", "Deadline"),
    (Fault.overloaded(), errors.ServerError, 503, "UNAVAILABLE", "The model is overloaded"),
    (Fault.bad_key(), errors.ClientError, 400, "INVALID_ARGUMENT", "API key not valid"),
    (Fault.permission_denied(), errors.ClientError, 403, "PERMISSION_DENIED", "permission"),
    (Fault.not_found(), errors.ClientError, 404, "NOT_FOUND", f"models/{FLASH} is not found for API version v1beta"),
])
def test_error_faults_raise_sdk_errors(client, emu, fault, cls, code, status, text):
    emu.fail_next(fault)
    with pytest.raises(cls) as info:
        client.models.generate_content(model=FLASH, contents="x")
    assert (info.value.code, info.value.status) == (code, status)
    assert text in info.value.message


def test_bad_key_fault_has_error_info(client, emu):
    emu.fail_next(Fault.bad_key())
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=FLASH, contents="x")
    assert rpc("ErrorInfo", info.value)[0]["reason"] == "API_KEY_INVALID"


def test_faults_are_consumed_in_order(client, emu):
    emu.fail_next(Fault.overloaded(), Fault.rate_limit())
    codes = []
    for _ in range(3):
        try:
            client.models.generate_content(model=FLASH, contents="x")
            codes.append(200)
        except errors.APIError as exc:
            codes.append(exc.code)
    assert codes == [503, 429, 200]


def test_blocked_prompt(client, emu):
    emu.fail_next(Fault.blocked("PROHIBITED_CONTENT"))
    resp = client.models.generate_content(model=FLASH, contents="x")
    assert resp.candidates is None and resp.parts is None
    assert resp.prompt_feedback.block_reason == types.BlockedReason.PROHIBITED_CONTENT
    assert resp.usage_metadata.prompt_token_count > 0


def test_candidate_without_image(client, emu):
    emu.fail_next(Fault.no_image("IMAGE_SAFETY"))
    resp = client.models.generate_content(model=FLASH, contents="x")
    assert resp.parts is None
    assert resp.candidates[0].finish_reason == types.FinishReason.IMAGE_SAFETY


def test_text_only_answer(client, emu):
    emu.fail_next(Fault.text_only("Which banana?"))
    resp = client.models.generate_content(model=FLASH, contents="x")
    assert [p.text for p in resp.parts] == ["Which banana?"] and answer_images(resp) == []
    assert resp.candidates[0].finish_reason == types.FinishReason.STOP


def test_thought_parts_come_first_and_are_flagged(make_client):
    emulator = GeminiEmulator(include_thoughts=True).start()
    try:
        resp = make_client(emulator).models.generate_content(model=PRO, contents="x", config=config("3:2", "2K"))
    finally:
        emulator.stop()
    assert [bool(p.thought) for p in resp.parts] == [True, True, False, False]
    assert resp.parts[1].inline_data is not None  # the interim image
    assert emulator.generate_requests[0].reply_images == [resp.parts[i].inline_data.data for i in (1, 3)]
    [img] = answer_images(resp)
    assert img.size == (2528, 1696) and resp.parts[-1].thought_signature
    assert resp.usage_metadata.thoughts_token_count > 0


def test_delay_fault_trips_the_sdk_timeout(emu, make_client):
    client = make_client(emu, timeout_ms=300)
    emu.fail_next(Fault.delay(1.5))
    start = time.monotonic()
    with pytest.raises(httpx2.ReadTimeout):  # a raw transport error, not an APIError
        client.models.generate_content(model=FLASH, contents="x")
    assert time.monotonic() - start < 1.2
    assert answer_images(client.models.generate_content(model=FLASH, contents="x"))


def test_delay_s_slows_every_generate(client, emu):
    emu.delay_s = 0.25
    start = time.monotonic()
    client.models.generate_content(model=FLASH, contents="x")
    assert time.monotonic() - start >= 0.25


def test_dropped_connection(client, emu):
    client.models.generate_content(model=FLASH, contents="warm the pool")
    emu.fail_next(Fault.drop_connection())
    with pytest.raises(httpx2.RemoteProtocolError):
        client.models.generate_content(model=FLASH, contents="x")
    assert len(emu.generate_requests) == 2  # the SDK did not silently retry


def test_not_json_body(client, emu):
    emu.fail_next(Fault.not_json())
    with pytest.raises(ValueError):  # json.JSONDecodeError in 3.3.0 (UnknownApiResponseError is a ValueError too)
        client.models.generate_content(model=FLASH, contents="x")


# --- validation, keys and models -----------------------------------------------------------------------------------

def test_unserved_model_is_404(emu, make_client):
    emulator = GeminiEmulator(models=[FLASH]).start()
    try:
        client = make_client(emulator)
        assert answer_images(client.models.generate_content(model=FLASH, contents="x"))
        with pytest.raises(errors.ClientError) as info:
            client.models.generate_content(model="gemini-2.5-flash-image-preview", contents="x")
    finally:
        emulator.stop()
    assert (info.value.code, info.value.status) == (404, "NOT_FOUND")
    assert "Call ListModels" in info.value.message


def test_valid_keys_are_enforced(make_client):
    with GeminiEmulator(valid_keys={"good"}) as emulator:
        assert answer_images(make_client(emulator, "good").models.generate_content(model=FLASH, contents="x"))
        with pytest.raises(errors.ClientError) as info:
            make_client(emulator, "bad").models.generate_content(model=FLASH, contents="x")
        status, body = raw_post(emulator, f"/v1beta/models/{FLASH}:generateContent",
                                b'{"contents":[{"parts":[{"text":"x"}]}]}')
        ok_status, _ = raw_post(emulator, f"/v1beta/models/{FLASH}:generateContent?key=good",
                                b'{"contents":[{"parts":[{"text":"x"}]}]}')
        keys = [r.api_key for r in emulator.requests]
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    assert rpc("ErrorInfo", info.value)[0]["reason"] == "API_KEY_INVALID"
    assert (status, body["error"]["status"]) == (403, "PERMISSION_DENIED")
    assert "unregistered callers" in body["error"]["message"]
    assert ok_status == 200
    assert keys == ["good", "bad", None, "good"]


@pytest.mark.parametrize(("model", "cfg", "text"), [
    (FLASH, config(candidate_count=2), f"Multiple candidates is not enabled for models/{FLASH}"),
    (FLASH, config("16:9", "2K"), "Image size '2K'"),
    (PRO, config("1:8", "1K"), "Aspect ratio '1:8'"),
    (NB2, config("1:8", "1K"), None),
])
def test_invalid_config_is_rejected(client, model, cfg, text):
    if text is None:  # the control case: a valid config passes
        assert answer_images(client.models.generate_content(model=model, contents="x", config=cfg))
        return
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=model, contents="x", config=cfg)
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    assert text in info.value.message


@pytest.mark.parametrize(("data", "mime", "text"), [
    (b"not an image", "image/png", "Unable to process input image"),
    (solid("GIF"), "image/gif", "Unsupported MIME type: image/gif"),
])
def test_bad_input_image_is_rejected(client, emu, data, mime, text):
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=FLASH, contents=["edit", types.Part.from_bytes(data=data, mime_type=mime)])
    assert info.value.code == 400 and text in info.value.message
    assert emu.generate_requests[0].images == [data]


@pytest.mark.parametrize(("body", "text"), [
    (b'{"contents":[{"role":"user","parts":[{"text":"  "}]}]}', "contents must contain text or an image"),
    (b"{not json", "Invalid JSON payload"),
])
def test_empty_or_malformed_request_is_400(emu, body, text):
    status, reply = raw_post(emu, f"/v1beta/models/{FLASH}:generateContent", body, {"x-goog-api-key": "k"})
    assert (status, reply["error"]["status"]) == (400, "INVALID_ARGUMENT")
    assert text in reply["error"]["message"]
    assert len(emu.generate_requests) == 1


def test_models_list_and_get(make_client):
    served = [FLASH, PRO, NB2]
    with GeminiEmulator(models=served) as emulator:
        client = make_client(emulator)
        listed = list(client.models.list(config={"page_size": 2}))  # two pages
        one = client.models.get(model=PRO)
        with pytest.raises(errors.ClientError) as info:
            client.models.get(model="gemini-1.0-pro-vision")
        methods = [r.method for r in emulator.requests]
        assert emulator.generate_requests == []
    assert [m.name for m in listed] == [f"models/{m}" for m in served]
    assert all("generateContent" in m.supported_actions for m in listed)
    assert one.name == f"models/{PRO}" and one.display_name == get_model(PRO).label
    assert info.value.code == 404
    assert methods == ["GET"] * 4


def test_records_headers_and_reset(client, emu):
    emu.fail_next(Fault.overloaded())
    with pytest.raises(errors.ServerError):
        client.models.generate_content(model=FLASH, contents="x")
    rec = emu.requests[0]
    assert rec.method == "POST" and rec.path == f"/v1beta/models/{FLASH}:generateContent"
    assert rec.headers["x-goog-api-key"] == "k" and rec.headers["x-goog-api-client"].startswith("google-genai-sdk/")
    emu.fail_next(Fault.overloaded())
    emu.reset()
    assert emu.requests == []
    assert answer_images(client.models.generate_content(model=FLASH, contents="x"))  # the fault was cleared


# --- other ways in -------------------------------------------------------------------------------------------------

def test_async_client(client, emu):
    async def main():
        try:
            return await asyncio.gather(*(client.aio.models.generate_content(model=FLASH, contents=f"cat {i}")
                                          for i in range(3)))
        finally:
            await client.aio.aclose()

    responses = asyncio.run(main())
    assert [answer_images(r)[0].size for r in responses] == [(1024, 1024)] * 3
    assert sorted(r.prompt for r in emu.generate_requests) == ["cat 0", "cat 1", "cat 2"]


def test_streaming(client, emu):
    chunks = list(client.models.generate_content_stream(model=FLASH, contents="x", config=config("16:9")))
    assert [img.size for c in chunks for img in answer_images(c)] == [(1344, 768)]
    assert emu.generate_requests[0].path.endswith(":streamGenerateContent")


def test_shared_emulator_is_one_started_instance(make_client):
    emulator = shared_emulator()
    assert shared_emulator() is emulator
    resp = make_client(emulator, OFFLINE_API_KEY).models.generate_content(model=FLASH, contents="offline")
    assert answer_images(resp)
    assert any(r.api_key == OFFLINE_API_KEY for r in emulator.generate_requests)


def test_start_is_idempotent_and_stop_frees_the_port():
    emulator = GeminiEmulator()
    assert emulator.start() is emulator.start()
    url = emulator.base_url
    emulator.stop()
    with pytest.raises(RuntimeError):
        _ = emulator.base_url
    host, port = url.removeprefix("http://").split(":")
    with pytest.raises(OSError):
        http.client.HTTPConnection(host, int(port), timeout=2).connect()


# --- server-side rate limit ----------------------------------------------------------------------------------------

def outcome(client, contents="x") -> int | float:
    """200 for an image, or the RetryInfo delay in seconds of a 429 (any other error propagates)."""
    try:
        assert answer_images(client.models.generate_content(model=FLASH, contents=contents))
        return 200
    except errors.ClientError as exc:
        if exc.code != 429:
            raise
        [retry] = rpc("RetryInfo", exc)
        assert re.fullmatch(r"\d+\.\d\ds", retry["retryDelay"])
        return float(retry["retryDelay"].removesuffix("s"))


def test_rate_limit_answers_429_with_retry_info_until_the_oldest_arrival_leaves(client, emu):
    emu.rate_limit, emu.rate_window_s = 3, 1.0
    assert outcome(client) == 200
    time.sleep(0.1)  # the first arrival stands apart, so the wait is seen to count from it
    assert [outcome(client) for _ in range(2)] == [200] * 2
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=FLASH, contents="x")
    exc = info.value
    assert (exc.code, exc.status) == (429, "RESOURCE_EXHAUSTED") and "Please retry in" in exc.message
    [violation] = rpc("QuotaFailure", exc)[0]["violations"]
    assert (violation["quotaId"], violation["quotaValue"]) == ("GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                                                               "3")
    [retry] = rpc("RetryInfo", exc)
    delay = float(retry["retryDelay"].removesuffix("s"))
    first, *_, fourth = emu.generate_requests
    assert 0 < delay <= 1.0
    assert -0.03 < delay - (first.received_at + 1.0 - fourth.received_at) <= 0.01  # the wait as the server counts
    assert exc.response.headers["retry-after"] == "1"
    assert [r.status for r in emu.generate_requests] == [200, 200, 200, 429]  # the refused request is recorded too
    time.sleep(delay)
    assert outcome(client) == 200
    assert emu.generate_requests[-1].status == 200


def test_refused_requests_do_not_count_toward_the_window(client, emu):
    emu.rate_limit, emu.rate_window_s = 2, 1.5  # wide enough that five calls fit in it on a loaded machine
    assert [outcome(client) for _ in range(2)] == [200, 200]
    delays = [outcome(client) for _ in range(3)]  # hammering while refused
    assert all(0 < d <= 1.5 for d in delays) and delays == sorted(delays, reverse=True)
    time.sleep(delays[-1])  # had the refusals counted, the window would still be full
    assert outcome(client) == 200
    times = [r.received_at for r in emu.generate_requests]
    assert busiest_window(times, 1.5) == 5  # the server saw five within the window ...
    assert busiest_window([r.received_at for r in emu.generate_requests if r.status == 200], 1.5) == 2  # ... let in 2


def test_a_lowered_limit_waits_for_enough_arrivals_to_leave(client, emu):
    emu.rate_limit, emu.rate_window_s = 2, 1.0
    assert outcome(client) == 200
    time.sleep(0.3)
    assert outcome(client) == 200
    emu.rate_limit = 1  # both counted arrivals must leave before one more fits
    delay = outcome(client)
    _, second, third = emu.generate_requests
    assert -0.03 < delay - (second.received_at + 1.0 - third.received_at) <= 0.01


def test_rate_limit_under_a_concurrent_burst(client, emu):
    emu.rate_limit, emu.rate_window_s = 3, 1.0

    async def burst():
        async def one(i):
            try:
                await client.aio.models.generate_content(model=FLASH, contents=f"cat {i}")
                return 200
            except errors.ClientError as exc:
                return exc.code
        try:
            return await asyncio.gather(*(one(i) for i in range(8)))
        finally:
            await client.aio.aclose()

    assert sorted(asyncio.run(burst())) == [200] * 3 + [429] * 5
    admitted = [r for r in emu.generate_requests if r.status == 200]
    assert len(admitted) == 3 and busiest_window([r.received_at for r in admitted], 1.0) == 3
    times = [r.received_at for r in emu.requests]
    assert times == sorted(times)  # recorded in arrival order
    assert [r.status for r in sorted(emu.generate_requests, key=lambda r: r.received_at)] == [200] * 3 + [429] * 5


def test_faults_come_before_the_rate_limit_and_do_not_count(client, emu):
    emu.rate_limit, emu.rate_window_s = 1, 1.0
    emu.fail_next(Fault.overloaded())
    with pytest.raises(errors.ServerError):
        client.models.generate_content(model=FLASH, contents="x")
    assert outcome(client) == 200  # the 503 took no slot
    emu.fail_next(Fault.server_error(500), Fault.text_only())
    with pytest.raises(errors.ServerError):  # the queued fault wins over the full window
        client.models.generate_content(model=FLASH, contents="x")
    assert 0 < outcome(client) <= 1.0  # over the limit: the text-only fault is spent on the 429
    assert [r.status for r in emu.generate_requests] == [503, 200, 500, 429]
    emu.reset()  # reset empties the window too
    assert outcome(client) == 200 and emu.requests[-1].status == 200


def test_a_refusal_is_immediate_despite_delay_s(client, emu):
    emu.rate_limit, emu.rate_window_s, emu.delay_s = 1, 1.0, 0.3
    assert outcome(client) == 200
    start = time.monotonic()
    assert 0 < outcome(client) <= 1.0
    assert time.monotonic() - start < 0.25  # the model never ran
    emu.rate_limit = None  # settable: no limit any more
    assert outcome(client) == 200


def test_status_is_recorded_for_every_request(client, emu):
    client.models.generate_content(model=FLASH, contents="warm the pool")
    emu.fail_next(Fault.drop_connection())
    with pytest.raises(httpx2.RemoteProtocolError):
        client.models.generate_content(model=FLASH, contents="x")
    with pytest.raises(errors.ClientError):
        client.models.generate_content(model="no-such-model", contents="x")
    client.models.get(model=FLASH)
    assert [r.status for r in emu.requests] == [200, 0, 404, 200]


@pytest.mark.parametrize("kwargs", [{"rate_limit": 0}, {"rate_limit": 2.5}, {"rate_limit": True},
                                    {"rate_window_s": 0}, {"rate_window_s": -1.0}])
def test_rate_settings_are_checked(emu, kwargs):
    with pytest.raises(ValueError):
        GeminiEmulator(**kwargs)
    [(name, value)] = kwargs.items()
    with pytest.raises(ValueError):
        setattr(emu, name, value)


@pytest.mark.parametrize(("times", "window_s", "expected"), [
    ([], 1.0, 0),
    ([5.0], 1.0, 1),
    ([0.0, 1.0], 1.0, 1),  # half-open: a window that holds 0 ends just before 1.0
    ([0.0, 0.999], 1.0, 2),
    ([0.0, 0.0, 0.0], 1.0, 3),
    ([3.0, 0.1, 0.2, 2.5, 0.3, 2.9, 3.05], 1.0, 4),  # unsorted; the later burst is the busier
    ([0.0, 0.5, 1.0, 1.5, 2.0], 1.0, 2),
    ([0.0, 0.5, 1.0, 1.5, 2.0], 1.01, 3),
    ([float(i) / 4 for i in range(20)], 5.0, 20),  # 20 requests per 5-second window
])
def test_busiest_window(times, window_s, expected):
    assert busiest_window(times, window_s) == expected


def test_busiest_window_needs_a_positive_window():
    with pytest.raises(ValueError):
        busiest_window([0.0], 0)


def test_an_emulator_leaves_no_folder_behind(make_client, monkeypatch, tmp_path):
    """Hundreds of emulators start in a test run: one that never stores a file makes no folder, and one that does
    removes its folder once it is gone (45,000 were left in /tmp before)."""
    import gc
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with GeminiEmulator():
        pass
    assert list(tmp_path.iterdir()) == []
    with GeminiEmulator() as emulator:
        client = make_client(emulator)
        assert client.files.upload(file=io.BytesIO(b"{}\n"), config={"mime_type": "application/jsonl"}).size_bytes == 3
        assert [p.name.startswith("gemini-emulator-files-") for p in tmp_path.iterdir()] == [True]
        client.close()  # its open connection's handler thread holds the emulator until it is closed
    del emulator
    gc.collect()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_answer_pngs_are_valid_and_carry_the_drawn_pixels_exactly(mode):
    """The emulator writes RGB and RGBA PNGs itself (rows unfiltered, for speed): every chunk's CRC checks and the
    pixels read back are the ones drawn; other modes go through Pillow."""
    from nanobanana_ui.emulator.pictures import png_base64, render

    drawn = render(FLASH, "a red fox", [], (300, 200), "seed 1").convert(mode)
    data = base64.b64decode(png_base64(drawn))
    with Image.open(io.BytesIO(data)) as checked:
        checked.verify()  # every chunk's CRC, and the end of the stream
    with Image.open(io.BytesIO(data)) as back:
        assert back.format == "PNG" and back.mode == mode and back.size == (300, 200)
        assert back.tobytes() == drawn.tobytes()
