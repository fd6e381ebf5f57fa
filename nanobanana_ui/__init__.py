"""Nano Banana Studio: generate, edit and compose images with Google's Gemini image models.

The layers are folders, lowest first; a module imports only its own layer and the layers below it, never one above
(tests/test_house.py checks it). `domain` is the ground: the request model and its cache key, the model registry
(models.json), costs, settings and the one tree of errors. Above it, side by side and never importing each other,
`imaging` (input images, personal-metadata stripping, PNG metadata and writing, saved outputs, region blending),
`quota` (the per-minute and per-day limits, shared across processes, the retry policy, key partitions), `backends`
(the Gemini API and Vertex AI over google-genai, the transport seam, model discovery) and `emulator` (the offline
Gemini stand-in). Then `storage` (the result cache and the history), then `service` (the `Studio` facade and its
capabilities: checks, sending, conversations, region edits, batches, visitors), and on top the front ends, `cli`
and `ui` (the Gradio page, one module per tab), started by the entry points `webapp.py` and `__main__.py`. A request
flows down: a front end builds it, the Studio checks it, answers it from the cache or sends it through the quota to
a backend, then saves, records and returns the result.
"""

from typing import TYPE_CHECKING, Any

from .domain.config import Settings, load_settings
from .domain.errors import StudioError
from .domain.request import GeneratedImage, ImageOptions, ImageRequest, ImageResult, Mode, Usage

if TYPE_CHECKING:
    from .service.studio import Studio

__all__ = [
    "GeneratedImage", "ImageOptions", "ImageRequest", "ImageResult", "Mode", "Settings", "Studio", "StudioError",
    "Usage", "load_settings",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """`Studio` on first use: importing it brings in the whole service layer (about 0.2 s), which a process that only
    needs a lower layer, e.g. the quota's shared secret, should not pay for."""
    if name == "Studio":
        from .service.studio import Studio

        return Studio
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
