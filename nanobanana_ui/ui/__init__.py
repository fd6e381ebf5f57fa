"""The Gradio front end: built by build_app() (page.py), one module per tab, calling only the Studio service."""

from .page import build_app

__all__ = ["build_app"]
