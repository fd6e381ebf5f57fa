"""Settings: every knob of the app, resolved once in one chain (explicit → .env → environment → default)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from .errors import ConfigError
from .models import default_model_id
from .text_models import default_text_model_id

__all__ = ["KEY_VARIABLES", "Settings", "load_settings", "parse_auth"]

# The key's names, in precedence order. GEMINI_API_KEY is ours; the others are accepted for convenience.
# (The SDK itself prefers GOOGLE_API_KEY; we always pass the key explicitly, so our order is the one that counts.)
KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "NANO_BANANA_API_KEY")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Settings:
    """Resolved configuration; the API key is kept out of repr() so it never reaches a log."""

    api_key: str | None = field(default=None, repr=False)
    home: Path = Path.home() / ".nanobanana"
    offline: bool = False
    base_url: str | None = None
    model: str = field(default_factory=default_model_id)
    text_model: str = field(default_factory=default_text_model_id)  # NANOBANANA_TEXT_MODEL: enhancer, describe
    model_explicit: bool = False  # NANOBANANA_MODEL (or an explicit setting) named it: used as given, never followed
    rpm: int = 60
    rpd: int = 1500
    cache_size_bytes: int = 2 * 1024**3
    # NANOBANANA_TIMEOUT: seconds to wait for one answer; None: the registry's per model and size (models.json)
    timeout_s: float | None = None
    # NANOBANANA_RETRY_TIMEOUTS, --retry-timeouts: retry a timeout that came after the whole request was sent (it may
    # have been billed, so by default it is reported, not sent again)
    retry_timeouts: bool = False
    out_dir: Path | None = None
    max_attempts: int = 5  # sends per request, retries included
    max_retry_wait_s: float = 120.0  # total seconds of backoff per request before giving up
    rate_window_s: float = 60.0  # the rate limit's window; only tests and benchmarks shorten it
    concurrency: int = 48  # web app: generation requests answered at once, all visitors together (API waits)
    # Many visitors at once (docs/crowds.md): each visitor's own cap, the waiting room's sizes, the CPU pool.
    visitor_concurrency: int = 2  # NANOBANANA_VISITOR_CONCURRENCY: one visitor's requests in flight (public mode)
    visitor_queue: int = 8  # NANOBANANA_VISITOR_QUEUE: one visitor's requests waiting behind their own; more refused
    queue_size: int = 64  # NANOBANANA_QUEUE_SIZE: requests waiting, all visitors together; more: "busy, try again"
    cpu_threads: int = 0  # NANOBANANA_CPU_THREADS: threads for PNG writing, blending, thumbnails; 0 = the cores
    proxy_hops: int = 0  # NANOBANANA_PROXY_HOPS: trusted proxies in front (x-forwarded-for); 1 on Spaces
    max_sessions: int = 500  # NANOBANANA_MAX_SESSIONS: page sessions kept in memory (least recently used go)
    emulator_log: int = 100  # NANOBANANA_EMULATOR_LOG: requests the offline emulator remembers (0: none)
    emulator_delay_s: float = 0.0  # NANOBANANA_EMULATOR_DELAY: the offline emulator's answer time, for demos/bench
    auth: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # web app logins (NANOBANANA_AUTH, --auth)
    # Public demos (bring your own key): see docs/deployment.md, "Public demos".
    public: bool = False  # NANOBANANA_PUBLIC; on by default on Hugging Face Spaces (SYSTEM=spaces)
    allow_server_key: bool = False  # NANOBANANA_ALLOW_SERVER_KEY: in public mode, keyless visitors use the host's key
    visitor_rpm: int = 10  # NANOBANANA_VISITOR_RPM: requests per minute per visitor in public mode
    max_upload_mb: float | None = None  # NANOBANANA_MAX_UPLOAD_MB; None: 10 in public mode, else 50
    key_clients: int = 32  # at most this many visitors' keys have a client open at once (least recently used go)
    # Gemini Batch Mode: its poll intervals are multiplied by this (tests and benchmarks shorten them with
    # NANOBANANA_BATCH_POLL_SCALE, matching the emulator's sped-up batch clock).
    batch_poll_scale: float = 1.0
    batch_pause_at: str | None = None  # NANOBANANA_BATCH_PAUSE_AT: a test hook that stops a run at a named point
    keep_metadata: bool = False  # NANOBANANA_KEEP_METADATA, --keep-metadata: send input images' GPS/EXIF as they are
    store: bool = False  # NANOBANANA_STORE, --store: let Google store requests (the Gemini API's `store`; else false)
    # Google Cloud (see docs/vertex.md): NANOBANANA_BACKEND=vertex, or the SDK's GOOGLE_GENAI_USE_VERTEXAI=true.
    backend: str = "gemini"  # "gemini" (AI Studio key) or "vertex" (Vertex AI: project credentials, or express key)
    google_project: str | None = None  # GOOGLE_CLOUD_PROJECT
    google_location: str = "global"  # GOOGLE_CLOUD_LOCATION; the Gemini 3 image models need global
    google_credentials: Path | None = None  # GOOGLE_APPLICATION_CREDENTIALS, else gcloud's application-default file
    google_credentials_variable: str | None = None  # which variable named the file (None: gcloud's well-known file)
    google_cloud_runtime: bool = False  # on Cloud Run / Functions / App Engine: the metadata server has credentials

    @property
    def uses_emulator(self) -> bool:
        """True when requests go to the embedded offline emulator (forced, or no key configured).

        Vertex AI never falls back to the emulator silently: missing credentials are reported instead.
        """
        return self.offline or (not self.api_key and not self.vertex)

    @property
    def vertex(self) -> bool:
        """True when requests go to Vertex AI (NANOBANANA_BACKEND=vertex or GOOGLE_GENAI_USE_VERTEXAI=true)."""
        return self.backend == "vertex"

    @property
    def output_dir(self) -> Path:
        """Where images are saved when no --out is given."""
        return self.out_dir or self.home / "outputs"

    @property
    def cache_dir(self) -> Path:
        """The result cache's directory."""
        return self.home / "cache"

    @property
    def quota_dir(self) -> Path:
        """Where today's request and cost counters live (never evicted, shared by every process)."""
        return self.home / "quota"

    @property
    def max_file_size(self) -> str:
        """Gradio's launch(max_file_size=...): larger uploads are refused with HTTP 413."""
        mb = self.max_upload_mb if self.max_upload_mb is not None else (10 if self.public else 50)
        return f"{mb:g}mb" if float(mb).is_integer() else f"{round(mb * 1024)}kb"  # Gradio takes whole numbers only

    @property
    def delete_cache(self) -> tuple[int, int] | None:
        """gr.Blocks(delete_cache=...): Gradio's cached files go after an hour in public mode, a day otherwise.

        (The originals stay in outputs/ and the history; without it Gradio's list of its files grows forever.)
        """
        return (3600, 3600) if self.public else (3600, 86400)

    @property
    def cpu_workers(self) -> int:
        """The CPU pool's size: NANOBANANA_CPU_THREADS, else the cores this process may use."""
        if self.cpu_threads > 0:
            return self.cpu_threads
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except (AttributeError, OSError):
            return max(1, os.cpu_count() or 1)

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields replaced (None values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


# Many visitors at once (docs/crowds.md): variable, field, type, minimum.
_CROWD_SETTINGS: tuple[tuple[str, str, type[int] | type[float], float], ...] = (
    ("NANOBANANA_VISITOR_CONCURRENCY", "visitor_concurrency", int, 1),
    ("NANOBANANA_VISITOR_QUEUE", "visitor_queue", int, 0),
    ("NANOBANANA_QUEUE_SIZE", "queue_size", int, 1),
    ("NANOBANANA_CPU_THREADS", "cpu_threads", int, 0),
    ("NANOBANANA_PROXY_HOPS", "proxy_hops", int, 0),
    ("NANOBANANA_MAX_SESSIONS", "max_sessions", int, 10),
    ("NANOBANANA_EMULATOR_LOG", "emulator_log", int, 0),
    ("NANOBANANA_EMULATOR_DELAY", "emulator_delay_s", float, 0),
)


def _flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a yes/no value: use 1 or 0.")


def _number(name: str, raw: str, kind: type[int] | type[float], minimum: float) -> int | float:
    try:
        value = kind(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number.") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}.")
    return value


def parse_auth(entries: str | list[str], name: str = "NANOBANANA_AUTH") -> tuple[tuple[str, str], ...]:
    """Logins for the web app: a string holds "user:pass" entries separated by commas, a list one entry each.

    The password may hold colons; the user name may not. Bad entries raise ConfigError without the password.
    """
    items = entries.split(",") if isinstance(entries, str) else list(entries)
    logins = []
    for item in items:
        user, colon, password = item.strip().partition(":")
        problem = ("an entry has no colon" if not colon else "an entry has no user name" if not user.strip()
                   else f"{user.strip()!r} has no password" if not password else None)
        if problem:
            raise ConfigError(f"{name}: {problem}; write user:password (several: user:pass,user2:pass2).")
        logins.append((user.strip(), password))
    return tuple(logins)


def _google_cloud(lookup: Callable[..., tuple[str, str] | None], env: Mapping[str, str]) -> dict[str, object]:
    """The Vertex AI settings: backend, project, location and where the credentials are (not the credentials)."""
    values: dict[str, object] = {}
    if (found := lookup("GOOGLE_GENAI_USE_VERTEXAI")) and _flag(*found):
        values["backend"] = "vertex"
    if found := lookup("NANOBANANA_BACKEND"):  # ours wins over the SDK's switch
        backend = found[1].strip().lower()
        if backend not in ("gemini", "vertex"):
            raise ConfigError(f"NANOBANANA_BACKEND={found[1]!r} is not a backend: use gemini or vertex.")
        values["backend"] = backend
    if found := lookup("GOOGLE_CLOUD_PROJECT"):
        values["google_project"] = found[1].strip()
    if found := lookup("GOOGLE_CLOUD_LOCATION"):
        values["google_location"] = found[1].strip()
    if found := lookup("GOOGLE_APPLICATION_CREDENTIALS"):
        values["google_credentials"] = Path(found[1].strip()).expanduser()
        values["google_credentials_variable"] = found[0]
    else:  # what `gcloud auth application-default login` writes (google.auth looks there too)
        gcloud = Path(found[1]).expanduser() if (found := lookup("CLOUDSDK_CONFIG")) else (
            Path(env["HOME"]) / ".config" / "gcloud" if env.get("HOME") else Path.home() / ".config" / "gcloud")
        if (gcloud / "application_default_credentials.json").is_file():
            values["google_credentials"] = gcloud / "application_default_credentials.json"
    values["google_cloud_runtime"] = any(env.get(name) for name in ("K_SERVICE", "FUNCTION_TARGET", "GAE_ENV"))
    return values


def load_settings(
    explicit: Mapping[str, object] | None = None,
    *,
    env_file: str | os.PathLike[str] | None = ".env",
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve Settings: explicit values win, then the .env file, then the environment, then defaults."""
    env = dict(os.environ if environ is None else environ)
    dot = {k: v for k, v in (dotenv_values(env_file) if env_file and Path(env_file).is_file() else {}).items() if v}

    def lookup(*names: str) -> tuple[str, str] | None:
        for source in (dot, env):
            for name in names:
                if source.get(name):
                    return name, source[name]
        return None

    values: dict[str, Any] = {}
    if found := lookup(*KEY_VARIABLES):
        values["api_key"] = found[1].strip()
    if found := lookup("NANOBANANA_HOME"):
        values["home"] = Path(found[1]).expanduser()
    if found := lookup("NANOBANANA_OFFLINE"):
        values["offline"] = _flag(*found)
    # Our own variable first; the SDK's GOOGLE_GEMINI_BASE_URL keeps working for relays set up for other tools.
    if found := lookup("NANOBANANA_BASE_URL", "GOOGLE_GEMINI_BASE_URL"):
        values["base_url"] = found[1].strip().rstrip("/")
    if found := lookup("NANOBANANA_MODEL"):
        values["model"] = found[1].strip()
        values["model_explicit"] = True
    if found := lookup("NANOBANANA_TEXT_MODEL"):
        values["text_model"] = found[1].strip()
    if found := lookup("NANOBANANA_RPM"):
        values["rpm"] = _number(*found, int, 1)
    if found := lookup("NANOBANANA_RPD"):
        values["rpd"] = _number(*found, int, 1)
    if found := lookup("NANOBANANA_CACHE_SIZE_MB"):
        values["cache_size_bytes"] = int(_number(*found, float, 1) * 1024**2)
    if found := lookup("NANOBANANA_TIMEOUT"):
        values["timeout_s"] = _number(*found, float, 1)
    if found := lookup("NANOBANANA_RETRY_TIMEOUTS"):
        values["retry_timeouts"] = _flag(*found)
    if found := lookup("NANOBANANA_RETRIES"):
        values["max_attempts"] = _number(*found, int, 1)
    if found := lookup("NANOBANANA_MAX_RETRY_WAIT"):
        values["max_retry_wait_s"] = _number(*found, float, 0)
    if found := lookup("NANOBANANA_RATE_WINDOW"):
        values["rate_window_s"] = _number(*found, float, 0.1)
    if found := lookup("NANOBANANA_CONCURRENCY"):
        values["concurrency"] = _number(*found, int, 1)
    for name, field_name, kind, minimum in _CROWD_SETTINGS:
        if found := lookup(name):
            values[field_name] = _number(*found, kind, minimum)
    if found := lookup("NANOBANANA_AUTH"):
        values["auth"] = parse_auth(found[1])
    values["public"] = env.get("SYSTEM", "").strip().lower() == "spaces"  # a Hugging Face Space is public
    if found := lookup("NANOBANANA_PUBLIC"):
        values["public"] = _flag(*found)
    if env.get("SYSTEM", "").strip().lower() == "spaces":
        values.setdefault("proxy_hops", 1)  # Spaces' proxy appends the visitor's address to x-forwarded-for
    if found := lookup("NANOBANANA_ALLOW_SERVER_KEY"):
        values["allow_server_key"] = _flag(*found)
    if found := lookup("NANOBANANA_VISITOR_RPM"):
        values["visitor_rpm"] = _number(*found, int, 1)
    if found := lookup("NANOBANANA_MAX_UPLOAD_MB"):
        values["max_upload_mb"] = _number(*found, float, 0.1)
    if found := lookup("NANOBANANA_BATCH_POLL_SCALE"):
        values["batch_poll_scale"] = _number(*found, float, 0)
    if found := lookup("NANOBANANA_BATCH_PAUSE_AT"):
        values["batch_pause_at"] = found[1].strip()
    if found := lookup("NANOBANANA_KEEP_METADATA"):
        values["keep_metadata"] = _flag(*found)
    if found := lookup("NANOBANANA_STORE"):
        values["store"] = _flag(*found)
    values.update(_google_cloud(lookup, env))
    values.update({k: v for k, v in (explicit or {}).items() if v is not None})
    if (explicit or {}).get("model") is not None:
        values["model_explicit"] = True
    return Settings(**values)
