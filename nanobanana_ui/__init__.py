"""Nano Banana Studio: generate, edit and compose images with Google's Gemini image models."""

from .config import Settings, load_settings
from .errors import StudioError
from .request import GeneratedImage, ImageOptions, ImageRequest, ImageResult, Mode, Usage
from .studio import Studio

__all__ = [
    "GeneratedImage", "ImageOptions", "ImageRequest", "ImageResult", "Mode", "Settings", "Studio", "StudioError",
    "Usage", "load_settings",
]
__version__ = "0.1.0"
