"""Vertex AI access: project, location and credentials from Settings, checked up front, and Vertex's errors explained.

Credentials, in order: a Vertex API key (express mode) when no project is set; else the file named by
GOOGLE_APPLICATION_CREDENTIALS (a service-account key) or written by `gcloud auth application-default login`;
else, on Cloud Run, Cloud Functions or App Engine, the metadata server. Every problem is one line that names the
variable or command that fixes it; google-auth's own exceptions never reach the user.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..domain.config import Settings
from ..domain.errors import (
    AuthError,
    ConfigError,
    InvalidKeyError,
    NetworkError,
    PermissionDeniedError,
    StudioError,
    map_error,
)

__all__ = ["CLOUD_SCOPE", "VertexAccess", "map_vertex_error", "resolve_vertex_access"]

CLOUD_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
LOGIN_HELP = ("run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a "
              "service-account key file")
_NO_CREDENTIALS = (f"Vertex AI needs credentials: {LOGIN_HELP} (or set GOOGLE_API_KEY to a Vertex API key for "
                   "express mode).")
_NO_PROJECT = ("Vertex AI needs a Google Cloud project: set GOOGLE_CLOUD_PROJECT (e.g. GOOGLE_CLOUD_PROJECT=my-project)"
               ", or use a Vertex API key (express mode) instead.")


@dataclass(frozen=True)
class VertexAccess:
    """Everything a Vertex client needs: project and location with credentials, or an express-mode API key."""

    project: str | None
    location: str | None
    credentials: Any = field(default=None, repr=False)  # google.auth.credentials.Credentials
    api_key: str | None = field(default=None, repr=False)

    @property
    def express(self) -> bool:
        """True for express mode (an API key, no project)."""
        return self.api_key is not None

    @property
    def endpoint(self) -> str:
        """Where the calls go, for the rate limiter's shared window (no secret in it)."""
        return f"vertex:{self.project}/{self.location}" if not self.express else "vertex:express"


def resolve_vertex_access(settings: Settings) -> VertexAccess:
    """Project, location and credentials for Vertex AI, or a ConfigError naming what is missing (no network)."""
    if settings.api_key and not settings.google_project:
        return VertexAccess(project=None, location=None, api_key=settings.api_key)
    credentials, file_project = _credentials(settings)
    project = settings.google_project or file_project
    if not project:
        raise ConfigError(_NO_PROJECT)
    return VertexAccess(project=project, location=settings.google_location or "global", credentials=credentials)


def _credentials(settings: Settings) -> tuple[Any, str | None]:
    """Load the credentials file (or the metadata server's credentials) without fetching a token yet.

    Only the two kinds a team hands out are accepted, each through its own loader (google-auth warns against
    loading arbitrary credential configurations): service-account keys, and gcloud's authorized-user file.
    """
    from google.auth import exceptions
    from google.oauth2 import credentials as user_credentials
    from google.oauth2 import service_account

    path = settings.google_credentials
    if path is None:
        if settings.google_cloud_runtime:
            from google.auth import compute_engine

            return compute_engine.Credentials(), None  # type: ignore[no-untyped-call]
        raise ConfigError(_NO_CREDENTIALS)
    where = (f"{settings.google_credentials_variable}={path}" if settings.google_credentials_variable
             else f"gcloud's credentials file {path}")
    if not path.is_file():
        raise ConfigError(f"{where} does not exist: {LOGIN_HELP}.")
    not_usable = ConfigError(f"{where} is not a service-account key or gcloud credentials file: {LOGIN_HELP}.")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        kind = info.get("type") if isinstance(info, dict) else None
        if kind == "service_account":
            account = service_account.Credentials.from_service_account_info(info, scopes=[CLOUD_SCOPE])  # type: ignore[no-untyped-call]
            return account, info.get("project_id")
        if kind == "authorized_user":
            user = user_credentials.Credentials.from_authorized_user_info(info, scopes=[CLOUD_SCOPE])  # type: ignore[no-untyped-call]
            return user, info.get("quota_project_id")
    except (exceptions.GoogleAuthError, ValueError, OSError):
        raise not_usable from None  # google-auth's message may quote the file; ours names it only
    raise not_usable


def map_vertex_error(exc: BaseException, *, model: str | None = None) -> StudioError:
    """map_error for Vertex calls: token failures and 401/403 explained for Google Cloud, never as a traceback."""
    from google.auth import exceptions
    from google.genai import errors as genai_errors

    if isinstance(exc, exceptions.RefreshError):
        reason = str(exc.args[0]) if exc.args else "refused"
        return AuthError(f"Google Cloud would not issue an access token ({_short(reason)}): {LOGIN_HELP}.")
    if isinstance(exc, exceptions.TransportError):
        return NetworkError("Could not reach Google's token service to refresh the Vertex AI credentials. "
                            "Check your network and try again.")
    if isinstance(exc, exceptions.GoogleAuthError):
        return AuthError(f"The Vertex AI credentials could not be used ({type(exc).__name__}): {LOGIN_HELP}.")
    if isinstance(exc, genai_errors.APIError) and exc.code == 401:
        return InvalidKeyError(f"Vertex AI rejected the credentials (401 {exc.status or 'UNAUTHENTICATED'}): "
                               f"{LOGIN_HELP}, or check the Vertex API key.", status_code=401)
    if isinstance(exc, genai_errors.APIError) and exc.code == 403:
        return PermissionDeniedError(
            f"Vertex AI denied access to {model or 'this model'} (403): check that the Vertex AI API is enabled in "
            "the project (GOOGLE_CLOUD_PROJECT) and that the account has the Vertex AI User role.")
    return map_error(exc, model=model)


def _short(text: str, limit: int = 160) -> str:
    """One line of at most `limit` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 1] + "…"
