"""One tree of exceptions, each with a message a person can act on, and the one function that maps SDK errors into it.

    StudioError                      exit 1   anything unexpected
    ├── InputError                   exit 2   the request is wrong; fix it and try again
    │   ├── ConfigError                       a setting has a bad value
    │   ├── ImageInputError                   an input image is unusable
    │   ├── UnsupportedOptionError            an option the model does not offer
    │   └── BadRequestError          400      the API refused the request as malformed
    │       └── ModelNotFoundError   404      unknown or retired model id
    │           └── ShutDownModelError            a shut-down id with no replacement (refused before any call)
    ├── AuthError                    exit 3   no key, a bad key, or no access
    │   ├── MissingKeyError
    │   ├── InvalidKeyError          400 API_KEY_INVALID / 401
    │   └── PermissionDeniedError    403
    ├── RateLimitError               exit 4   429: wait (per-minute) or come back tomorrow (per-day)
    │   └── BudgetExceededError               our own daily budget (NANOBANANA_RPD) is spent; nothing was sent
    ├── NoImageError                 exit 5   the model answered, but without an image
    │   ├── PromptBlockedError                promptFeedback.blockReason
    │   ├── ImageWithheldError                finishReason IMAGE_SAFETY, NO_IMAGE, ...
    │   └── TextOnlyError                     the model replied with words only
    ├── ServiceError                 exit 6   the service or the network failed; try again later
    │   ├── ServerError              5xx
    │   ├── ServiceTimeoutError               no answer in time
    │   │   └── SentTimeoutError              no answer in time after the whole request was sent: it may have
    │   │                                     been billed, so it is not retried unless the user allows it
    │   ├── NetworkError                      connection refused, dropped or unreachable
    │   └── BadResponseError                  the answer could not be read
    └── StorageError                 exit 7   a result could not be written here (disk full, ...); nothing paid for
                                              is lost: free space and run the same command again
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .quota_clock import time_to_pacific_midnight

__all__ = [
    "AuthError", "BadRequestError", "BadResponseError", "BudgetExceededError", "ConfigError", "ImageInputError",
    "ImageWithheldError", "InputError", "InvalidKeyError", "MissingKeyError", "ModelNotFoundError", "NetworkError",
    "NoImageError", "PermissionDeniedError", "PromptBlockedError", "RateLimitError", "SentTimeoutError", "ServerError",
    "ServiceError", "ServiceTimeoutError", "ShutDownModelError", "StorageError", "StudioError", "TextOnlyError",
    "UnsupportedOptionError", "map_error",
]

KEY_HELP = "Get a key at https://aistudio.google.com/apikey and put GEMINI_API_KEY=... in .env or the environment."


class StudioError(Exception):
    """Base of every error the app reports; str() is the message shown to the user."""

    exit_code = 1
    status_code: int | None = None

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code


class InputError(StudioError):
    """The request itself is wrong (prompt, image, option, setting); nothing was sent."""

    exit_code = 2


class ConfigError(InputError):
    """A setting (environment, .env, flag) has a value the app cannot use."""


class ImageInputError(InputError):
    """An input image cannot be used (not an image, damaged, too large, too many)."""


class UnsupportedOptionError(InputError):
    """An option the selected model does not offer (e.g. 4K on a 1K-only model)."""


class BadRequestError(InputError):
    """The API answered 400: the request was malformed or had an invalid value."""

    status_code = 400


class ModelNotFoundError(BadRequestError):
    """The API answered 404 for the model: unknown or retired id."""

    status_code = 404

    def __init__(self, message: str, *, model: str | None = None, available: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.model = model
        self.available = available


class ShutDownModelError(ModelNotFoundError):
    """A model id the registry knows was shut down and has no replacement: refused before any call."""


class AuthError(StudioError):
    """The key is missing, wrong, or lacks access."""

    exit_code = 3


class MissingKeyError(AuthError):
    """No API key is configured where one is required."""


class InvalidKeyError(AuthError):
    """The API rejected the key."""

    status_code = 400


class PermissionDeniedError(AuthError):
    """The key is valid but may not use this model or project (403)."""

    status_code = 403


class RateLimitError(StudioError):
    """429 RESOURCE_EXHAUSTED: a per-minute rate limit (retry after a wait) or a per-day quota."""

    exit_code = 4
    status_code: int | None = 429

    def __init__(self, message: str, *, retry_after_s: float | None = None, quota_id: str | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.quota_id = quota_id

    @property
    def per_day(self) -> bool:
        """True when the exhausted quota is a daily one (retrying today is pointless)."""
        return bool(self.quota_id and "PerDay" in self.quota_id)


class BudgetExceededError(RateLimitError):
    """Today's client-side budget (NANOBANANA_RPD) is spent; the request was not sent."""

    status_code = None

    @property
    def per_day(self) -> bool:
        """Always: the budget is a daily one."""
        return True


class NoImageError(StudioError):
    """The model answered without an image; never cached, so asking again may work."""

    exit_code = 5

    def __init__(self, message: str, *, reason: str | None = None, text: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.text = text


class PromptBlockedError(NoImageError):
    """The whole prompt was blocked (promptFeedback.blockReason)."""


class ImageWithheldError(NoImageError):
    """The candidate finished without an image (IMAGE_SAFETY, NO_IMAGE, ...)."""


class TextOnlyError(NoImageError):
    """The model replied with text only: it declined, or asked a question."""


class ServiceError(StudioError):
    """The service or the network failed; the request may work later."""

    exit_code = 6


class ServerError(ServiceError):
    """5xx from the API (500 internal, 503 overloaded, 504 deadline)."""


class ServiceTimeoutError(ServiceError):
    """No answer within the timeout."""


class SentTimeoutError(ServiceTimeoutError):
    """No answer in time although the whole request was sent: Gemini may have made (and billed) the image."""


class NetworkError(ServiceError):
    """The connection could not be made or was dropped."""


class BadResponseError(ServiceError):
    """The service answered something that is not a Gemini response."""


class StorageError(StudioError):
    """A result could not be written (disk full, a read-only folder): stop, keep what is paid for, run again later."""

    exit_code = 7


def _error_body(details: Any) -> dict[str, Any]:
    """The {"code", "message", "status", "details"} object of an SDK error, whatever shape the SDK kept."""
    if isinstance(details, list) and details:
        details = details[0]
    if not isinstance(details, dict):
        return {}
    inner = details.get("error")
    return inner if isinstance(inner, dict) else details


def _short(text: str) -> str:
    """A server's message fit for one line: an HTML page (proxy, captive portal) is named, not quoted."""
    text = " ".join(text.split())
    if text.lower().startswith(("<!doctype", "<html")):
        return "an HTML page instead of an API answer (a proxy or network login page?)"
    return text if len(text) <= 300 else text[:297] + "..."


def _detail(body: dict[str, Any], type_suffix: str) -> dict[str, Any]:
    for item in body.get("details") or ():
        if isinstance(item, dict) and str(item.get("@type", "")).endswith(type_suffix):
            return item
    return {}


def _parse_seconds(text: str | None) -> float | None:
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*s?\s*", text or "")
    return float(match.group(1)) if match else None


def _retry_after(body: dict[str, Any], response: Any) -> float | None:
    delay = _parse_seconds(_detail(body, "RetryInfo").get("retryDelay"))
    if delay is None and response is not None:
        headers = getattr(response, "headers", None) or {}
        delay = _parse_seconds(headers.get("retry-after") if hasattr(headers, "get") else None)
    return delay


def _map_api_error(code: int, body: dict[str, Any], response: Any, model: str | None) -> StudioError:
    status = str(body.get("status") or "")
    text = _short(str(body.get("message") or "")) or f"HTTP {code}"
    reason = _detail(body, "ErrorInfo").get("reason", "")
    if reason == "API_KEY_INVALID" or "API key not valid" in text or code == 401:
        return InvalidKeyError(f"The API key was rejected ({text}). {KEY_HELP}", status_code=code)
    if code == 403:
        return PermissionDeniedError(
            f"Permission denied: this key may not use {model or 'this model'} ({text}). Check that the Generative "
            "Language API is enabled for the key's project and that the model is available in your region.")
    if code == 404:
        return ModelNotFoundError(
            f"Model {model!r} was not found: the id is wrong or the model was retired. "
            "Pick another model (`python -m nanobanana_ui models` lists the known ones).", model=model)
    if code == 429:
        violations = _detail(body, "QuotaFailure").get("violations") or [{}]
        quota_id = violations[0].get("quotaId")
        wait = _retry_after(body, response)
        if quota_id and "PerDay" in quota_id:
            msg = (f"The daily quota for {model or 'this model'} is used up ({quota_id}); "
                   f"it resets at midnight Pacific time, in {time_to_pacific_midnight()}.")
        else:
            after = f"try again in {math.ceil(wait)} s" if wait is not None else "wait a minute and try again"
            msg = f"Rate limit reached for {model or 'this model'}: {after}."
        return RateLimitError(msg, retry_after_s=wait, quota_id=quota_id)
    if code >= 500:
        if code == 503 or status == "UNAVAILABLE":
            msg = f"Gemini is overloaded or unavailable right now ({code}); try again in a few seconds."
        elif code == 504 or status == "DEADLINE_EXCEEDED":
            msg = f"Gemini took too long and gave up ({code}); try again, perhaps with a smaller image size."
        else:
            msg = f"Gemini had an internal error ({code} {status}): {text}. Try again."
        return ServerError(msg, status_code=code)
    if code == 400:
        return BadRequestError(f"Gemini refused the request as invalid: {text}")
    return StudioError(f"Gemini answered {code} {status}: {text}", status_code=code)


def map_error(exc: BaseException, *, model: str | None = None) -> StudioError:
    """Turn any exception from the SDK or its transport into a StudioError with an actionable message."""
    if isinstance(exc, StudioError):
        return exc
    from google.genai import errors as genai_errors  # the SDK is imported lazily by the backend too

    if isinstance(exc, genai_errors.APIError):
        return _map_api_error(int(exc.code or 0), _error_body(exc.details), exc.response, model)
    if isinstance(exc, (genai_errors.UnknownApiResponseError, json.JSONDecodeError)):
        return BadResponseError(f"Gemini (or the relay at the base URL) answered something unreadable: {exc}")
    # Transports (httpx2, httpx, aiohttp) raise their own classes; match by name so none needs importing.
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {"TimeoutException", "TimeoutError", "ServerTimeoutError"}:
        return ServiceTimeoutError("Gemini did not answer in time. Try again, or raise NANOBANANA_TIMEOUT.")
    if names & {"TransportError", "ClientConnectionError", "ClientError", "ConnectionError", "OSError"}:
        return NetworkError(f"Could not reach Gemini ({type(exc).__name__}: {exc or 'connection failed'}). "
                            "Check your network, or NANOBANANA_BASE_URL if you use a relay.")
    return StudioError(f"Unexpected error talking to Gemini: {type(exc).__name__}: {exc}")
