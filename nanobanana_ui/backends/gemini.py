"""The backend: one ImageRequest in, one BackendReply out, over the official google-genai SDK (async, v1beta)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from ..domain.errors import SentTimeoutError, ServiceTimeoutError, map_error
from ..domain.inputs import InputImage
from ..domain.models import request_timeout_s
from ..domain.request import ImageRequest
from ..domain.text_request import TextRequest
from .discovery import ListedModel, is_image_model
from .gemini_wire import BackendReply, build_config, build_contents, parse_response
from .text import TextReply, build_text_config, build_text_contents, parse_text_response
from .tls import shared_client_args
from .transport import SendObserver, SendTracer
from .vertex import VertexAccess, map_vertex_error

__all__ = ["GeminiBackend"]

log = logging.getLogger(__name__)
_FILE_MARGIN_S = 600.0  # a file this close to its expiry is uploaded again rather than sent
_FILE_LIFETIME_S = 48 * 3600.0  # the Files API keeps a file 48 hours


def _file_gone(exc: BaseException) -> bool:
    """True for the API's answer to a request naming a file that expired or no longer exists."""
    code = getattr(exc, "code", None)
    return code in (400, 403, 404) and "file" in str(exc).lower()


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
        # The Gemini API shares this process's TLS context; Vertex keeps the SDK's own (it may load a client cert).
        client_args, async_client_args = shared_client_args() if vertex is None else ({}, {})
        options = types.HttpOptions(
            # the SDK's default (v1) lacks the image options; Vertex's beta is v1beta1
            api_version="v1beta" if vertex is None else "v1beta1",
            base_url=base_url,
            timeout=int((timeout_s or _LISTING_TIMEOUT_S) * 1000),  # milliseconds; generate sets its own
            client_args=client_args or None,
            # event_hooks: for the rate limiter's count
            async_client_args={**async_client_args, "event_hooks": self._tracer.event_hooks()},
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
