"""Nano Banana Studio: generate, edit and compose images with Google's Gemini image models."""

from .domain.config import Settings, load_settings
from .domain.errors import StudioError
from .domain.request import GeneratedImage, ImageOptions, ImageRequest, ImageResult, Mode, Usage
from .service.studio import Studio

__all__ = [
    "GeneratedImage", "ImageOptions", "ImageRequest", "ImageResult", "Mode", "Settings", "Studio", "StudioError",
    "Usage", "load_settings",
]
__version__ = "0.1.0"
