"""The backend: one ImageRequest in, one BackendReply out, over the official google-genai SDK (async, v1beta)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..domain.errors import (
    BadResponseError,
    ImageWithheldError,
    PromptBlockedError,
    SentTimeoutError,
    ServiceTimeoutError,
    TextOnlyError,
    map_error,
)
from ..domain.inputs import InputImage
from ..domain.models import request_timeout_s
from ..domain.request import ImageRequest, Source, ThoughtImage, Usage
from ..domain.text_request import TextRequest
from ..domain.turns import Turn, TurnPart
from .discovery import ListedModel, is_image_model
from .text import TextReply, build_text_config, build_text_contents, parse_text_response
from .transport import SendObserver, SendTracer
from .vertex import VertexAccess, map_vertex_error

__all__ = ["BackendReply", "GeminiBackend", "build_config", "build_contents", "parse_response"]

log = logging.getLogger(__name__)
_FILE_MARGIN_S = 600.0  # a file this close to its expiry is uploaded again rather than sent
_FILE_LIFETIME_S = 48 * 3600.0  # the Files API keeps a file 48 hours

_WITHHELD_HINTS = {
    "IMAGE_SAFETY": "Gemini's safety filter withheld the image",
    "IMAGE_PROHIBITED_CONTENT": "Gemini withheld the image as prohibited content",
    "IMAGE_RECITATION": "Gemini withheld the image because it resembled existing work too closely",
    "SAFETY": "Gemini's safety filter stopped the answer",
    "PROHIBITED_CONTENT": "Gemini stopped the answer as prohibited content",
    "RECITATION": "Gemini stopped the answer because it resembled existing work too closely",
    "NO_IMAGE": "Gemini finished without making an image",
    "MAX_TOKENS": "Gemini ran out of output tokens before making an image",
}
CONTINUATION = "CONTINUATION"  # the answer hit the per-request limit; the SDK would re-send (and bill) to go on
_CONTINUATION_MESSAGE = ("Gemini stopped before it finished (CONTINUATION: it reached the per-request limit) and made "
                         "no image. Trying again costs another call.")


@dataclass(frozen=True)
class BackendReply:
    """What the API returned for a request that produced at least one image."""

    images: tuple[tuple[bytes, str], ...]  # (exact bytes, mime type), thought images excluded
    text: str
    finish_reason: str | None
    usage: Usage
    thought_images: tuple[ThoughtImage, ...] = ()  # interim images (part.thought), in order: never the answer
    sources: tuple[Source, ...] = ()  # Google Search grounding chunks: web pages, and images with image search
    search_entry_point: str | None = None  # Google's search-suggestions HTML, to be shown as given
    search_queries: int = 0  # searches the answer reports having run (what Google charges for)
    model_parts: tuple[TurnPart, ...] = ()  # the candidate's content as returned: every part, thoughts, signatures
    model_version: str | None = None  # the response's modelVersion: which model answered (Google reroutes some ids)


def _sdk_part(part: TurnPart) -> Any:
    from google.genai import types

    if part.data is not None:
        blob = types.Blob(data=part.data, mime_type=part.mime_type)
        return types.Part(inline_data=blob, thought=part.thought or None, thought_signature=part.thought_signature)
    return types.Part(text=part.text or "", thought=part.thought or None, thought_signature=part.thought_signature)


def _sdk_content(turn: Turn) -> Any:
    from google.genai import types

    return types.Content(role=turn.role, parts=[_sdk_part(part) for part in turn.parts])


def build_contents(request: ImageRequest, files: Mapping[str, str] | None = None) -> list[Any]:
    """The earlier turns of a refinement (as stored), then the user turn: the prompt verbatim (a region edit's with
    its framing), then each image, then a kit's references (each after the text part that names it).

    `files` maps an image's sha256 to its Files API uri: such a kit image is sent as `fileData`, not inline.
    """
    from google.genai import types

    parts = [types.Part.from_text(text=request.model_prompt())]
    parts += [types.Part.from_bytes(data=image.data, mime_type=image.mime_type) for image in request.images]
    for added in request.kit.parts() if request.kit is not None else ():  # after the user's own inputs
        if isinstance(added, str):
            parts.append(types.Part.from_text(text=added))
        elif added.sha256 in (files or {}):
            parts.append(types.Part.from_uri(file_uri=(files or {})[added.sha256], mime_type=added.mime_type))
        else:
            parts.append(types.Part.from_bytes(data=added.data, mime_type=added.mime_type))
    return [*(_sdk_content(turn) for turn in request.history), types.Content(role="user", parts=parts)]


def _turn_part(part: Any) -> TurnPart:
    """One SDK part as plain data, nothing dropped: the next turn must send it back exactly."""
    blob = part.inline_data
    if blob is not None and blob.data is not None:
        return TurnPart(data=bytes(blob.data), mime_type=blob.mime_type or "application/octet-stream",
                        thought=bool(part.thought), thought_signature=part.thought_signature)
    return TurnPart(text=part.text or "", thought=bool(part.thought), thought_signature=part.thought_signature)


def build_config(request: ImageRequest) -> Any:
    """The GenerateContentConfig for a request; options left as None are not sent."""
    from google.genai import types

    opts = request.options
    image_config = None
    vertex_only = opts.output_mime_type or opts.output_quality is not None or opts.person_generation
    if opts.aspect_ratio or opts.size or vertex_only:
        image_config = types.ImageConfig(  # the SDK itself refuses the Vertex-only fields on the Gemini API
            aspect_ratio=opts.aspect_ratio, image_size=opts.size, output_mime_type=opts.output_mime_type,
            output_compression_quality=opts.output_quality, person_generation=opts.person_generation)
    thinking_config = None
    if opts.thinking is not None or opts.show_thoughts:
        level = types.ThinkingLevel(opts.thinking.upper()) if opts.thinking else None
        thinking_config = types.ThinkingConfig(thinking_level=level,
                                               include_thoughts=True if opts.show_thoughts else None)
    tools: types.ToolListUnion | None = None
    if opts.search:
        # search_types unset means web search; image search must name both kinds (google-genai >= 3.x SearchTypes).
        search_types = (types.SearchTypes(web_search=types.WebSearch(), image_search=types.ImageSearch())
                        if opts.image_search else None)
        tools = [types.Tool(google_search=types.GoogleSearch(search_types=search_types))]
    return types.GenerateContentConfig(
        store=request.store,  # None (Vertex, or not decided here) is not sent
        response_modalities=["TEXT", "IMAGE"] if opts.with_text else ["IMAGE"],
        temperature=opts.temperature,
        top_p=opts.top_p,
        top_k=opts.top_k,
        seed=opts.seed,
        image_config=image_config,
        thinking_config=thinking_config,
        tools=tools,
    )


def _file_gone(exc: BaseException) -> bool:
    """True for the API's answer to a request naming a file that expired or no longer exists."""
    code = getattr(exc, "code", None)
    return code in (400, 403, 404) and "file" in str(exc).lower()


def _enum_name(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", None) or getattr(value, "name", None) or value)


def _usage(meta: Any) -> Usage:
    if meta is None:
        return Usage()
    by_modality = {"IMAGE": 0, "TEXT": 0}
    for detail in meta.candidates_tokens_details or ():
        name = _enum_name(detail.modality)
        if name in by_modality:
            by_modality[name] += detail.token_count or 0
    return Usage(
        prompt_tokens=meta.prompt_token_count or 0,
        output_tokens=meta.candidates_token_count or 0,
        image_tokens=by_modality["IMAGE"],
        text_tokens=by_modality["TEXT"],
        total_tokens=meta.total_token_count or 0,
        thought_tokens=meta.thoughts_token_count or 0,
    )


def _grounding(candidate: Any) -> tuple[tuple[Source, ...], str | None, int]:
    """Sources, the search entry point's HTML and the number of searches from a candidate's grounding metadata."""
    meta = candidate.grounding_metadata
    if meta is None:
        return (), None, 0
    sources: list[Source] = []
    for chunk in meta.grounding_chunks or ():
        if chunk.web is not None and chunk.web.uri:
            sources.append(Source(title=chunk.web.title or chunk.web.domain or chunk.web.uri, uri=chunk.web.uri))
        elif chunk.image is not None and (chunk.image.source_uri or chunk.image.image_uri):
            page = chunk.image.source_uri or chunk.image.image_uri or ""
            sources.append(Source(title=chunk.image.title or chunk.image.domain or page, uri=page,
                                  image_uri=chunk.image.image_uri))
    entry = meta.search_entry_point.rendered_content if meta.search_entry_point is not None else None
    # Google charges per search query; an answer grounded without listing its queries ran at least one.
    queries = len(meta.web_search_queries or ()) + len(meta.image_search_queries or ())
    return tuple(dict.fromkeys(sources)), entry or None, queries or (1 if sources or entry else 0)


def parse_response(response: Any) -> BackendReply:
    """Read a GenerateContentResponse; every no-image outcome raises its own NoImageError subclass."""
    feedback = response.prompt_feedback
    if not response.candidates:
        reason = _enum_name(feedback.block_reason) if feedback is not None else None
        if reason:
            raise PromptBlockedError(
                f"Gemini blocked the prompt ({reason}). Rephrase it, or change the input images.", reason=reason)
        raise BadResponseError("Gemini answered with no candidates and no reason. Try again.")
    candidate = response.candidates[0]
    finish = _enum_name(candidate.finish_reason)
    parts = (candidate.content.parts if candidate.content is not None else None) or ()
    images: list[tuple[bytes, str]] = []
    thoughts: list[ThoughtImage] = []
    texts: list[str] = []
    for part in parts:
        blob = part.inline_data
        if part.thought:  # Gemini 3 sends interim "thinking" images and notes: not the answer
            if blob is not None and blob.data and (blob.mime_type or "").startswith("image/"):
                thoughts.append(ThoughtImage(data=blob.data, mime_type=blob.mime_type or "image/png"))
            continue
        if blob is not None and blob.data and (blob.mime_type or "").startswith("image/"):
            images.append((blob.data, blob.mime_type))
        elif part.text:
            texts.append(part.text)
    text = "\n".join(texts).strip()
    if images:
        model_parts = tuple(_turn_part(part) for part in parts)
        sources, entry, queries = _grounding(candidate)
        return BackendReply(tuple(images), text, finish, _usage(response.usage_metadata),
                            thought_images=tuple(thoughts), sources=sources, search_entry_point=entry,
                            search_queries=queries, model_parts=model_parts,
                            model_version=getattr(response, "model_version", None) or None)
    if finish == CONTINUATION:
        raise ImageWithheldError(_CONTINUATION_MESSAGE + (f" It said: {text}" if text else ""), reason=finish,
                                 text=text)
    if finish and finish not in ("STOP", "FINISH_REASON_UNSPECIFIED"):
        hint = _WITHHELD_HINTS.get(finish, "Gemini finished without an image")
        said = f" It said: {text}" if text else ""
        raise ImageWithheldError(f"{hint} ({finish}). Change the prompt or the input image and try again.{said}",
                                 reason=finish, text=text)
    if text:
        raise TextOnlyError(f"Gemini replied with text instead of an image: {text}", reason=finish, text=text)
    raise ImageWithheldError("Gemini returned neither an image nor text. Try again.", reason=finish)


def _listed(model: Any) -> ListedModel:
    """A models.list() entry as its id, display name and description."""
    return ListedModel((model.name or "").removeprefix("models/"), model.display_name or "", model.description or "")


_LISTING_TIMEOUT_S = 120.0  # calls other than image generation (listings, text) when NANOBANANA_TIMEOUT is not set


class _SentFlag:
    """A send observer that remembers whether the request's last byte left, and tells the caller's observer."""

    def __init__(self, inner: SendObserver | None) -> None:
        self.inner = inner
        self.sent = False

    def mark_sent(self, request_bytes: int = 0, round_trip_s: float = 0.0) -> None:
        """The request is on its way: a timeout from now on may have been billed."""
        self.sent = True
        if self.inner is not None:
            self.inner.mark_sent(request_bytes, round_trip_s)


def _read_timeout(exc: BaseException) -> bool:
    """True for a transport's read timeout (the request had left: only the answer was late)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"ReadTimeout", "SocketTimeoutError"})


class GeminiBackend:
    """An async google-genai client for one key and base URL; the SDK's own retry stays off (one retry layer)."""

    def __init__(self, *, api_key: str = "", base_url: str | None = None, timeout_s: float | None = None,
                 vertex: VertexAccess | None = None, store: bool = False) -> None:
        """A client for one key (or Vertex access); `timeout_s` None: each request waits the registry's time."""
        from google import genai
        from google.genai import types

        self._tracer = SendTracer()
        self._timeout_s = timeout_s
        options = types.HttpOptions(
            # the SDK's default (v1) lacks the image options; Vertex's beta is v1beta1
            api_version="v1beta" if vertex is None else "v1beta1",
            base_url=base_url,
            timeout=int((timeout_s or _LISTING_TIMEOUT_S) * 1000),  # milliseconds; generate sets its own
            async_client_args={"event_hooks": self._tracer.event_hooks()},  # for the rate limiter's count
        )
        self._vertex = vertex
        self._store = store  # the Gemini API's `store` for requests that do not say (never sent on Vertex)
        self._map_error = map_error if vertex is None else map_vertex_error
        # Kit images uploaded once through the Files API (this key's): sha256 -> (uri, expiry). Vertex has none.
        self.files_api = vertex is None
        self._files: dict[str, tuple[str, float]] = {}
        self._files_record: Path | None = None  # where the uploads are remembered across processes (no key in it)
        self.uploads = 0  # how many files this backend uploaded (tests and the benchmark read it)
        if vertex is None:
            # vertexai=False: GOOGLE_GENAI_USE_VERTEXAI in the environment must not reroute our calls.
            self._client = genai.Client(api_key=api_key, vertexai=False, http_options=options)
        elif vertex.express:
            self._client = genai.Client(vertexai=True, api_key=vertex.api_key, http_options=options)
        else:  # explicit project, location and credentials: the SDK reads nothing from the environment
            self._client = genai.Client(vertexai=True, project=vertex.project, location=vertex.location,
                                        credentials=vertex.credentials, http_options=options)

    def remember_files(self, record: Path) -> None:
        """Keep this key's uploads in `record` (JSON: image sha256 -> file uri and expiry; never the key), so that
        later processes on the same key send the files they still have instead of uploading again."""
        self._files_record = record
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        now = time.time()
        for sha, value in (data.items() if isinstance(data, dict) else ()):
            if isinstance(value, list) and len(value) == 2 and isinstance(value[1], (int, float)) and value[1] > now:
                self._files.setdefault(str(sha), (str(value[0]), float(value[1])))

    def _save_files(self) -> None:
        if self._files_record is None:
            return
        try:
            self._files_record.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._files_record.with_name(f".tmp-{os.getpid()}-{self._files_record.name}")
            tmp.write_text(json.dumps({sha: [uri, expires] for sha, (uri, expires) in self._files.items()}),
                           encoding="utf-8")
            tmp.replace(self._files_record)
        except OSError as exc:  # the uploads stay remembered in this process
            log.warning("could not record the kit uploads: %s", exc)

    async def generate(self, request: ImageRequest, *, observer: SendObserver | None = None) -> BackendReply:
        """Send one request and parse the reply; every failure arrives as a StudioError.

        `observer` is told when the request's last byte left this machine (the rate limiter's slot). A timeout after
        that is a SentTimeoutError: Gemini may have made, and billed, the image.
        """
        from google.genai import types

        config = build_config(request)
        files = await self._kit_files(request)
        # One call per request: the SDK's automatic continuation would re-send (and bill) each hop unseen.
        update: dict[str, Any] = {"automatic_continuation": False}
        if self._vertex is None:  # Google stores requests unless told not to; Vertex takes no such field
            update["store"] = self._store if request.store is None else request.store
        else:
            update["store"] = None
        config = config.model_copy(update=update)
        timeout_s = self._timeout_s or request_timeout_s(request.model, request.options.size)
        sent = _SentFlag(observer)
        with self._tracer.observe(sent) as headers:
            config = config.model_copy(update={"http_options": types.HttpOptions(
                headers=headers, timeout=int(timeout_s * 1000))})
            try:
                try:
                    response = await self._client.aio.models.generate_content(
                        model=request.model, contents=build_contents(request, files), config=config)
                except Exception as exc:
                    if not files or not _file_gone(exc):
                        raise
                    # A file expired or vanished: upload the kit's images again and send the request once more.
                    for sha in files:
                        self._files.pop(sha, None)
                    self._save_files()
                    await self._upload_again(request)
                    files = await self._kit_files(request)
                    response = await self._client.aio.models.generate_content(
                        model=request.model, contents=build_contents(request, files), config=config)
            except Exception as exc:  # noqa: BLE001 - every SDK and transport error is mapped in one place
                error = self._map_error(exc, model=request.model)
                if isinstance(error, ServiceTimeoutError) and (sent.sent or _read_timeout(exc)):
                    error = SentTimeoutError(
                        f"Gemini got the whole request but did not answer in time ({timeout_s:.0f} s): it may have "
                        "made, and billed, the image. Not sent again (run it again with --retry-timeouts, or set "
                        "NANOBANANA_RETRY_TIMEOUTS=1, to allow that; NANOBANANA_TIMEOUT waits longer).")
                raise error from exc
        return parse_response(response)

    async def generate_text(self, request: TextRequest, *, observer: SendObserver | None = None) -> TextReply:
        """Send one text-model request (enhance, describe) and read its words; failures arrive as StudioErrors."""
        from google.genai import types

        config = build_text_config(request)
        with contextlib.ExitStack() as stack:
            if observer is not None:
                headers = stack.enter_context(self._tracer.observe(observer))
                config = config.model_copy(update={"http_options": types.HttpOptions(headers=headers)})
            try:
                response = await self._client.aio.models.generate_content(
                    model=request.model, contents=build_text_contents(request), config=config)
            except Exception as exc:  # noqa: BLE001 - every SDK and transport error is mapped in one place
                raise self._map_error(exc, model=request.model) from exc
        return parse_text_response(response)

    def files_to_upload(self, request: ImageRequest) -> list[InputImage]:
        """The request's kit images that have no valid Files API upload yet (none on Vertex, or without a kit)."""
        if request.kit is None or not self.files_api:
            return []
        images = {reference.image.sha256: reference.image for reference in request.kit.references}
        return [image for sha, image in images.items()
                if sha not in self._files or self._files[sha][1] - time.time() <= _FILE_MARGIN_S]

    async def upload(self, image: InputImage) -> None:
        """Upload one image through the Files API (one call); it is then sent as `fileData` while it is valid."""
        from google.genai import types

        try:
            uploaded = await self._client.aio.files.upload(
                file=io.BytesIO(image.data),
                config=types.UploadFileConfig(mime_type=image.mime_type, display_name=f"kit-{image.sha256[:16]}"))
        except Exception as exc:  # noqa: BLE001 - mapped in one place, like a request's
            raise map_error(exc) from exc
        if uploaded.uri:
            self.uploads += 1
            expires = uploaded.expiration_time.timestamp() if uploaded.expiration_time else (
                time.time() + _FILE_LIFETIME_S)
            self._files[image.sha256] = (uploaded.uri, expires)
            self._save_files()

    async def _kit_files(self, request: ImageRequest) -> dict[str, str]:
        """The Files API uris of a request's kit images: those uploaded and valid (the others go inline)."""
        if request.kit is None or not self.files_api:
            return {}
        uris: dict[str, str] = {}
        for reference in request.kit.references:
            known = self._files.get(reference.image.sha256)
            if known is not None and known[1] - time.time() > _FILE_MARGIN_S:
                uris[reference.image.sha256] = known[0]
        return uris

    async def _upload_again(self, request: ImageRequest) -> None:
        """After a refusal for a vanished file: upload what is missing; an upload that fails leaves it inline."""
        for image in self.files_to_upload(request):
            try:
                await self.upload(image)
            except Exception as exc:  # noqa: BLE001 - the image goes inline instead
                log.warning("could not upload a kit image (sent inline instead): %s", type(exc).__name__)

    async def list_image_models(self) -> tuple[str, ...]:
        """Ids of the image-generation models this key can use (Vertex lists publisher models elsewhere: none)."""
        if self._vertex is not None:
            return ()
        try:
            pager = await self._client.aio.models.list()
            models = [model async for model in pager]
        except Exception as exc:  # noqa: BLE001
            raise map_error(exc) from exc
        listed = (_listed(model) for model in models if model.name)
        return tuple(sorted(m.id for m in listed if is_image_model(m.id, m.display_name, m.description)))

    def list_generate_models(self) -> tuple[ListedModel, ...]:
        """Every model this key can call with generateContent, with its display name and description (blocking:
        model discovery runs it in a thread).

        It uses the client's synchronous HTTP pool, which is separate from the async one the requests use.
        """
        try:
            models = list(self._client.models.list(config={"page_size": 200}))
        except Exception as exc:  # noqa: BLE001
            raise map_error(exc) from exc
        return tuple(_listed(model) for model in models
                     if model.name and "generateContent" in (model.supported_actions or ()))

    async def aclose(self) -> None:
        """Close the HTTP pool."""
        await self._client.aio.aclose()
        self._client.close()  # the synchronous pool, used by model discovery
