"""The Gradio front end: built by build_app(), calling only the Studio service."""

from .layout import build_app

__all__ = ["build_app"]
