"""Gemini Batch Mode over google-genai: create, find, get, cancel, upload and download, each retried under RetryPolicy.

A create that fails with a retryable error may still have made the job (the request can arrive and its answer be
lost), so before sending it again we list the jobs and adopt the one with our unique display name.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ...backends.gemini_wire import build_config, build_contents
from ...backends.tls import shared_client_args
from ...domain.errors import RateLimitError, StudioError, map_error
from ...domain.request import ImageRequest
from ...quota.retry import RetryPolicy, describe_failure

if TYPE_CHECKING:
    from google.genai import types

    from ...domain.config import Settings

__all__ = ["SETTLE_PATIENCE_S", "BatchApi", "WireLines", "file_line", "inline_request", "pick_job", "poll_delays",
           "settle_delays"]

T = TypeVar("T")
_LIST_PAGE = 100


def poll_delays(scale: float = 1.0) -> Iterator[float]:
    """Seconds between polls: 5 s growing by half each time, then never more often than every 30 s after the first
    minute, up to every 2 minutes. `scale` multiplies every interval (tests match the emulator's faster clock)."""
    delay, elapsed = 5.0, 0.0
    while True:
        if elapsed >= 60.0:
            delay = max(delay, 30.0)
        yield delay * scale
        elapsed += delay
        delay = min(delay * 1.5, 120.0)


def inline_request(request: ImageRequest, key: str) -> types.InlinedRequest:
    """One request of an inline job, carrying its key as metadata."""
    from google.genai import types

    return types.InlinedRequest(contents=build_contents(request), config=build_config(request),
                                metadata={"key": key})


def file_line(client: Any, request: ImageRequest, key: str) -> str:
    """One line of a JSONL input file: {"key", "request": GenerateContentRequest in the REST shape}."""
    from google.genai import _common
    from google.genai.batches import _InlinedRequest_to_mldev

    # The SDK's own converter (private, but the one its inline create uses) turns typed config into the REST
    # fields, including those at request level (tools) and inside generationConfig (imageConfig, thinkingConfig).
    wire = _InlinedRequest_to_mldev(client._api_client, inline_request(request, key))
    body = _common.encode_unserializable_types(_common.convert_to_dict(wire))
    return json.dumps({"key": key, "request": body["request"]}, ensure_ascii=False)


class WireLines:
    """JSONL input lines, built fast: the SDK's converter runs once per distinct config, not once per request.

    Converting a typed request with the SDK costs several milliseconds (pydantic walks); a batch's rows mostly share
    their options. The contents (the prompt, then each input image) are plain parts, base64 as the SDK sends them.
    tests/test_gemini_batch.py checks that a line equals the SDK's own conversion (file_line).
    """

    def __init__(self, client: Any) -> None:
        """Convert with this client's settings."""
        self._client = client
        self._configs: dict[tuple[str, Any, bool | None], dict[str, Any]] = {}

    def line(self, request: ImageRequest, key: str) -> str:
        """One line: {"key", "request": {"contents": [...], "generationConfig": {...}, ...}}."""
        import base64

        from google.genai import _common, types
        from google.genai.batches import _InlinedRequest_to_mldev

        options = replace(request.options, variation=0)  # the variation never reaches the wire
        rest = self._configs.get((request.model, options, request.store))
        if rest is None:
            wire = _InlinedRequest_to_mldev(self._client._api_client,
                                            types.InlinedRequest(config=build_config(request)))
            converted: dict[str, Any] = _common.encode_unserializable_types(_common.convert_to_dict(wire))
            rest = dict(converted.get("request") or {})
            if request.store is not None:  # the SDK's converter drops `store` from a request without contents
                rest["store"] = request.store
            self._configs[(request.model, options, request.store)] = rest
        parts: list[dict[str, Any]] = [{"text": request.prompt}]
        parts += [{"inlineData": {"data": base64.urlsafe_b64encode(image.data).decode("ascii"),
                                  "mime_type": image.mime_type}}  # snake_case inside, as the SDK sends it
                   for image in request.images]
        body = {"contents": [{"parts": parts, "role": "user"}], **rest}
        return json.dumps({"key": key, "request": body}, ensure_ascii=False)


_TIMEOUT_S = 120.0  # the batch and Files API calls (no image is made while they wait): NANOBANANA_TIMEOUT overrides


SETTLE_PATIENCE_S = 300.0  # how long a job that may exist is looked for in the listing before creating another


def settle_delays(scale: float = 1.0) -> Iterator[float]:
    """Seconds between listings while waiting for a job to be listed: 2, 4, 8, 16, then 30, 30, ... times `scale`."""
    delay = 2.0
    while True:
        yield delay * scale
        delay = min(delay * 2, 30.0)


def pick_job(found: list[types.BatchJob]) -> tuple[types.BatchJob, list[types.BatchJob]]:
    """Of several jobs with one display name: the one to adopt (one already succeeded, else the oldest), the rest."""
    def rank(job: types.BatchJob) -> tuple[int, str]:
        state = str(getattr(job.state, "value", job.state) or "")
        return (0 if state == "JOB_STATE_SUCCEEDED" else 1, str(job.create_time or ""))

    ordered = sorted(found, key=rank)
    return ordered[0], ordered[1:]


class BatchApi:
    """The batch and Files API of one key, with our retry policy (the SDK's own retry stays off)."""

    def __init__(self, settings: Settings, *, policy: RetryPolicy,
                 on_event: Callable[[str], None] | None = None) -> None:
        """Build the client: the emulator when the settings say offline, else Gemini (or the relay)."""
        from google import genai
        from google.genai import types

        base_url: str | None
        if settings.uses_emulator:
            from ...emulator import OFFLINE_API_KEY, shared_emulator

            key, base_url = OFFLINE_API_KEY, shared_emulator(record_limit=settings.emulator_log).base_url
        else:
            key, base_url = settings.api_key or "", settings.base_url
        timeout_ms = int((settings.timeout_s or _TIMEOUT_S) * 1000)
        client_args, async_client_args = shared_client_args()
        options = types.HttpOptions(api_version="v1beta", base_url=base_url, timeout=timeout_ms,
                                    client_args=client_args, async_client_args=async_client_args)
        self.client = genai.Client(api_key=key, vertexai=False, http_options=options)
        self.policy = policy
        self.on_event = on_event
        self.poll_scale = settings.batch_poll_scale

    async def _retry(self, what: str, call: Callable[[], Awaitable[T]],
                     before_retry: Callable[[StudioError], Awaitable[T | None]] | None = None) -> T:
        attempt, waited = 1, 0.0
        while True:
            try:
                return await call()
            except Exception as exc:  # noqa: BLE001 - every SDK and transport error is mapped in one place
                error = exc if isinstance(exc, StudioError) else map_error(exc)
            delay = self.policy.next_delay(error, attempt, waited)
            if delay is None:
                raise error
            if self.on_event is not None:
                self.on_event(f"{describe_failure(error)} ({what}): retrying in {delay:.1f} s, "
                              f"attempt {attempt + 1}/{self.policy.max_attempts}")
            await asyncio.sleep(delay)
            waited += delay
            attempt += 1
            if before_retry is not None:
                found = await before_retry(error)
                if found is not None:
                    return found

    async def find(self, display_name: str) -> list[types.BatchJob]:
        """Every job of this key with this display name (newest first)."""
        async def listing() -> list[types.BatchJob]:
            pager = await self.client.aio.batches.list(config={"page_size": _LIST_PAGE})
            return [job async for job in pager if job.display_name == display_name]

        return await self._retry("listing batch jobs", listing)

    async def find_settled(self, display_name: str, *, patience_s: float = SETTLE_PATIENCE_S) -> list[types.BatchJob]:
        """`find`, polled with backoff (2, 4, 8, 16, then every 30 s, times batch_poll_scale) for up to `patience_s`
        (also scaled) until something is listed: a job just made can take a while to appear in the listing."""
        waited, patience = 0.0, patience_s * self.poll_scale
        for delay in settle_delays(self.poll_scale):
            found = await self.find(display_name)
            if found or waited >= patience:
                return found
            delay = min(delay, patience - waited)
            if self.on_event is not None:
                self.on_event(f"waiting for Gemini to list the job an earlier attempt may have made: "
                              f"{waited / self.poll_scale:.0f} s of {patience_s:.0f}")
            await asyncio.sleep(delay)
            waited += delay
        return []  # pragma: no cover - settle_delays never ends

    async def create(self, *, model: str, src: Any, display_name: str,
                     on_send: Callable[[], None] | None = None) -> types.BatchJob:
        """Create the job; after a failure, adopt a job that did get made rather than make a second.

        `on_send` runs before each attempt (the journal's "create_sent"). After a timeout, a dropped connection or a
        5xx the job may exist without being listed yet, so the listing is watched for minutes (find_settled) before
        sending again; after a 429 it was refused, so one listing is enough.
        """
        async def adopt(error: StudioError) -> types.BatchJob | None:
            found = await (self.find(display_name) if isinstance(error, RateLimitError)
                           else self.find_settled(display_name))
            return pick_job(found)[0] if found else None

        async def send() -> types.BatchJob:
            if on_send is not None:
                on_send()
            return await self.client.aio.batches.create(model=model, src=src, config={"display_name": display_name})

        return await self._retry("creating the batch job", send, before_retry=adopt)

    async def get(self, name: str) -> types.BatchJob:
        """The job's current state (and, once done, its results)."""
        return await self._retry("checking the batch job", lambda: self.client.aio.batches.get(name=name))

    async def stats(self, name: str) -> dict[str, int] | None:
        """The job's request counts (requestCount, successfulRequestCount, ...), or None when unavailable.

        google-genai 3.3 drops the Gemini API's `metadata.batchStats` when it parses a job (it keeps only Vertex's
        completion_stats), so this reads the same GET through the SDK's own transport. Best effort: no retries.
        """
        try:
            reply = await self.client.aio._api_client.async_request("get", name, {}, None)
            body = json.loads(reply.body or "{}")
            raw = (body.get("metadata") or {}).get("batchStats") or {}
            return {k: int(v) for k, v in raw.items()} or None
        except Exception:  # noqa: BLE001 - counts are only for the progress bar
            return None

    async def cancel(self, name: str) -> None:
        """Ask the API to cancel the job."""
        await self._retry("cancelling the batch job", lambda: self.client.aio.batches.cancel(name=name))

    async def upload(self, path: Path, display_name: str) -> str:
        """Upload a JSONL input file (resumable upload); its name, "files/..."."""
        async def send() -> str:
            uploaded = await self.client.aio.files.upload(file=str(path), config={
                "mime_type": "application/jsonl", "display_name": display_name})
            return str(uploaded.name)

        return await self._retry("uploading the batch input", send)

    async def download(self, file_name: str, destination: Path) -> None:
        """Stream a result file to disk (never whole in memory)."""
        async def fetch() -> None:
            await self.client.aio.files.download(file=file_name, destination=str(destination))

        await self._retry("downloading the batch results", fetch)

    async def aclose(self) -> None:
        """Close the HTTP pool."""
        await self.client.aio.aclose()
