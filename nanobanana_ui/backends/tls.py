"""One TLS context for every Gemini API client in this process, instead of two new ones per client.

google-genai builds two `ssl.create_default_context()` per `genai.Client` (one for httpx, one for websockets), and
loading the CA bundle costs about 20 ms of CPU each time: a public demo makes a client per visitor's key, a batch
one per run, so the cost was paid on every visitor and every test. A context holds only the trusted CAs and
settings (no key, no session unless one is passed explicitly), so sharing it between visitors shares nothing of theirs.
"""

from __future__ import annotations

import functools
import os
import ssl
from typing import Any

__all__ = ["shared_client_args"]


@functools.cache
def _context(cafile: str | None, capath: str | None) -> ssl.SSLContext:
    """The default client context for these CA locations, made once."""
    if cafile is None:
        import certifi  # google-genai's own default bundle (a dependency of the SDK and of httpx)

        cafile = certifi.where()
    return ssl.create_default_context(cafile=cafile, capath=capath)


def shared_client_args() -> tuple[dict[str, Any], dict[str, Any]]:
    """`HttpOptions.client_args` and `async_client_args` that carry this process's shared TLS context.

    The CA locations are read as the SDK reads them (SSL_CERT_FILE, else certifi's bundle; SSL_CERT_DIR), so a user's
    corporate bundle still applies. For the Gemini API only: Vertex with a client certificate (mTLS) builds its own.
    """
    context = _context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    # httpx takes `verify`; the SDK's websocket (Live API) path reads `ssl` from the async args and httpx drops it.
    return {"verify": context}, {"verify": context, "ssl": context}
