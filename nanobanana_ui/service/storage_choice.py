"""Whether Google may store a request: the Gemini API's `store` field, off unless the user opts in."""

from __future__ import annotations

from ..domain.config import Settings
from ..domain.errors import ConfigError

__all__ = ["STORE_ON_VERTEX", "request_store"]

STORE_ON_VERTEX = ("--store (NANOBANANA_STORE=1) applies to the Gemini API only: Vertex AI has no per-request store "
                   "field (the SDK refuses it there); Vertex keeps requests as your Google Cloud project's data "
                   "governance settings say. Leave --store off on Vertex.")


def request_store(settings: Settings, *, vertex: bool) -> bool | None:
    """The `store` value to send: the user's choice (default False) on the Gemini API, None (not sent) on Vertex.

    Asking for it on Vertex is refused with a ConfigError that says why.
    """
    if vertex:
        if settings.store:
            raise ConfigError(STORE_ON_VERTEX)
        return None
    return settings.store
