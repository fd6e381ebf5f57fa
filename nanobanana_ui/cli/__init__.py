"""The command line: `python -m nanobanana_ui` (console script `nanobanana`); it calls only the service layer."""

from .main import main

__all__ = ["main"]
