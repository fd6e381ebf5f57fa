"""Visitors' own keys (bring your own key) and public mode: a Studio per key, a rate limit per visitor.

A visitor's key is held only inside that key's Studio (its client), in a small registry keyed by a salted hash of the
key (the salt is random per process, so the registry's keys mean nothing outside it). The key is never put in
os.environ, a module-level client, a file, a log line, a cache key or the history. Each key's results are cached in
their own partition of the result cache, named by another salted hash (the salt is kept in NANOBANANA_HOME/secret,
created once with mode 0600, so the partition survives restarts); nobody receives another key's cached image.
Clients are closed when the registry holds too many (least recently used first) and when the visitor's session ends,
but never while one of the visitor's operations holds them (a batch between two rows, a request waiting its turn).

Who a visitor is (for fairness, caps and budgets; see DESIGN.md): a visitor with their own key is that key, by its
salted partition hash; a keyless visitor is their login, else their client address (the `x-forwarded-for` entry the
trusted proxy appended, NANOBANANA_PROXY_HOPS). The session id, which the client chooses, is never the identity.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import OrderedDict, deque
from typing import Any

from ..domain.config import Settings
from ..domain.errors import InvalidKeyError, MissingKeyError, RateLimitError
from ..quota.partitions import key_partition, salted_hash, stable_salt
from .studio import Studio

__all__ = ["KEY_PAGE", "MISSING_KEY_MESSAGE", "KeyRing", "VisitorLimits", "client_address"]

log = logging.getLogger(__name__)
KEY_PAGE = "https://aistudio.google.com/apikey"
MISSING_KEY_MESSAGE = (f"Add your Gemini API key in the \"Your Gemini API key\" field first (get one at {KEY_PAGE}). "
                       "It is used only for your own requests and is never stored. Nothing was sent.")
MAX_KEY_LENGTH = 256


def client_address(request: Any, proxy_hops: int = 0) -> str:
    """The visitor's address: with `proxy_hops` trusted proxies in front, the x-forwarded-for entry the outermost
    of them appended (entries further left are written by the client, so never trusted); else the peer's address."""
    if request is None:
        return "local"
    if proxy_hops > 0:
        headers = getattr(request, "headers", None) or {}
        forwarded = [part.strip() for part in str(headers.get("x-forwarded-for", "") or "").split(",")]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= proxy_hops:
            return forwarded[-proxy_hops]
    client = getattr(request, "client", None)
    host = getattr(client, "host", None)
    return str(host) if host else "unknown"


class KeyRing:
    """The host's Studio, plus one Studio per visitor's key (made on first use, closed when unused)."""

    def __init__(self, host: Studio, *, capacity: int | None = None) -> None:
        self.host = host
        self.settings: Settings = host.settings
        self.capacity = capacity or self.settings.key_clients
        self._process_salt = secrets.token_bytes(32)  # registry keys: meaningless outside this process
        self._cache_salt: bytes | None = None
        self._studios: OrderedDict[str, Studio] = OrderedDict()
        # session id -> the hashed key it used last; bounded, since API calls (curl, MCP) never say they left
        self._sessions: OrderedDict[str, str] = OrderedDict()
        self.max_sessions = max(self.settings.max_sessions, 1)
        self._lock = threading.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    def _hash(self, key: str) -> str:
        return hmac.new(self._process_salt, key.encode(), hashlib.sha256).hexdigest()

    def _salt(self) -> bytes:
        if self._cache_salt is None:
            self._cache_salt = stable_salt(self.settings.home)
        return self._cache_salt

    def _stable_hash(self, text: str) -> str:
        return salted_hash(self._salt(), text)

    def partition(self, key: str) -> str:
        """The key's cache partition: a salted hash, stable across restarts, that does not reveal the key."""
        return key_partition(self.settings.home, key, salt=self._salt())

    def visitor_of(self, api_key: str | None, request: Any) -> str:
        """Who a visitor is, for fairness, caps and budgets: their own key (its partition hash), else their login,
        else their client address; never the session id, which the client chooses (see the module's docstring)."""
        key = (api_key or "").strip()
        if key and not (self.settings.api_key and hmac.compare_digest(key, self.settings.api_key)):
            return "key:" + self.partition(key)
        username = getattr(request, "username", None)
        if username:
            return f"user:{username}"
        return "addr:" + client_address(request, self.settings.proxy_hops)

    def private_folder(self, owner: str) -> str:
        """A folder name for one visitor's files that nobody else can guess (a salted hash of their owner id)."""
        return "v" + self._stable_hash("owner:" + owner)

    @property
    def public(self) -> bool:
        """True in public mode (NANOBANANA_PUBLIC, or on Spaces)."""
        return self.settings.public

    def host_serves_keyless(self) -> bool:
        """Whether a visitor without a key is served by the host's Studio (and its key and limits)."""
        if not self.public:
            return True
        if self.settings.offline:  # the host chose the emulator for everyone (explicitly, never as a fallback)
            return True
        return self.settings.allow_server_key and bool(self.settings.api_key)

    def studio_for(self, api_key: str | None, session: str | None = None) -> Studio:
        """The Studio that answers this visitor: their key's own, or the host's; MissingKeyError when neither."""
        key = (api_key or "").strip()
        if not key:
            if self.host_serves_keyless():
                return self.host
            raise MissingKeyError(MISSING_KEY_MESSAGE)
        if len(key) > MAX_KEY_LENGTH or not all(33 <= ord(ch) < 127 for ch in key):
            # Checked before any client sees it: an HTTP library's error about a bad header would quote the value.
            raise InvalidKeyError("That does not look like a Gemini API key (printable letters, digits and "
                                  f"punctuation, no spaces). Copy it again from {KEY_PAGE}. Nothing was sent.")
        if self.settings.api_key and hmac.compare_digest(key, self.settings.api_key):
            return self.host  # the host's own key, typed in the page: the same client, cache and limits
        hashed = self._hash(key)
        with self._lock:
            studio = self._studios.get(hashed)
            if studio is None:
                studio = self._new_studio(key)
                self._studios[hashed] = studio
            self._studios.move_to_end(hashed)
            if session:
                self._sessions[session] = hashed
                self._sessions.move_to_end(session)
                while len(self._sessions) > self.max_sessions:
                    self._sessions.popitem(last=False)
            evicted = []
            while len(self._studios) > self.capacity:
                old_hash, old = self._studios.popitem(last=False)
                evicted.append(old)
                self._sessions = OrderedDict((s, h) for s, h in self._sessions.items() if h != old_hash)
        for old in evicted:
            self._close_later(old)
        return studio

    def _new_studio(self, key: str) -> Studio:
        # A visitor's key is a Gemini API key: on a Vertex host it must not fall through to the host's project.
        settings = self.settings.with_overrides(api_key=key, backend="gemini")
        return Studio(settings, cache=self.host.cache.partition(self.partition(key)))

    def forget_session(self, session: str | None) -> None:
        """The visitor left: close their key's client unless another session still uses the same key."""
        if not session:
            return
        with self._lock:
            hashed = self._sessions.pop(session, None)
            if hashed is None or hashed in self._sessions.values():
                return
            studio = self._studios.pop(hashed, None)
        if studio is not None:
            self._close_later(studio)

    def __len__(self) -> int:
        return len(self._studios)

    def _close_later(self, studio: Studio) -> None:
        """Close a Studio once the requests it is answering are done (on the running loop, if any)."""

        async def close() -> None:
            deadline = time.monotonic() + 600
            while studio.held or (studio.busy and time.monotonic() < deadline):  # a held Studio: its whole operation
                await asyncio.sleep(0.5)
            try:
                await studio.aclose()
            except Exception as exc:  # noqa: BLE001 - a client that fails to close is only logged (never its key)
                log.warning("could not close a visitor's client: %s", type(exc).__name__)

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(close())
            return
        task = loop.create_task(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Close every visitor's Studio (the host's is its owner's to close)."""
        with self._lock:
            studios, self._studios, self._sessions = list(self._studios.values()), OrderedDict(), OrderedDict()
        for studio in studios:
            await studio.aclose()


class VisitorLimits:
    """At most `rpm` requests per visitor in any `window_s` seconds (public mode), on top of the shared limiter.

    A visitor over the limit is refused at once with the wait (no request queued), so one visitor cannot fill the
    queue for everyone else.
    """

    def __init__(self, rpm: int, window_s: float = 60.0) -> None:
        self.rpm, self.window_s = rpm, window_s
        self._sent: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def take(self, visitor: str, count: int = 1) -> None:
        """Count `count` requests for this visitor, or raise RateLimitError saying how long to wait."""
        now = time.monotonic()
        with self._lock:
            for who in [w for w, times in self._sent.items() if not times or times[-1] <= now - self.window_s]:
                del self._sent[who]  # visitors idle for a whole window are forgotten
            times = self._sent.setdefault(visitor, deque())
            while times and times[0] <= now - self.window_s:
                times.popleft()
            if len(times) + count > self.rpm:
                free_at = times[len(times) + count - self.rpm - 1] + self.window_s if count <= self.rpm else now
                wait = max(free_at - now, 0.0)
                raise RateLimitError(
                    f"This demo allows {self.rpm} requests per minute per visitor"
                    + (f"; try again in {wait:.0f} s." if count <= self.rpm else
                       f": {count} at once is more than that."), retry_after_s=wait)
            times.extend([now] * count)
