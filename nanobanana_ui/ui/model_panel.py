"""The model dropdown's choices for one visitor: the models their key (or the host's) can use, from discovery.

Discovery answers at once (the registry, until the key's listing has arrived in the background), so the page is
drawn from the registry and asks again on a short timer until the listing is in; see StudioTab.refresh_models.
"""

from __future__ import annotations

from typing import NamedTuple

import gradio as gr

from ..backends.discovery import Availability
from ..domain.errors import StudioError
from ..domain.models import known_models
from .runner import Runner

__all__ = ["NO_KEY_NOTE", "ModelChoices", "visitor_models"]

NO_KEY_NOTE = "Paste your Gemini API key above to see the models it can use; showing every model in the registry."


class ModelChoices(NamedTuple):
    """What the dropdown offers a visitor now, and whether asking again later may change it."""

    availability: Availability
    pending: bool  # True while this key's listing is still on its way


def visitor_models(runner: Runner, api_key: str | None, request: gr.Request | None) -> ModelChoices:
    """The models this visitor's key can use (their own key's Studio in public mode, else the host's); never waits
    for the network. Without a usable key (public mode), the registry, with a note saying how to see theirs."""
    try:
        studio = runner.keys.studio_for(api_key, getattr(request, "session_hash", None))
    except StudioError:
        return ModelChoices(Availability(models=known_models(), notes=(NO_KEY_NOTE,)), pending=False)
    availability = studio.available_models()  # starts the listing in the background when needed
    running = not studio.discovery.wait(timeout=0)
    return ModelChoices(availability, pending=running and not availability.listed)
