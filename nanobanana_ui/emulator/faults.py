"""Emulator failures: the Fault kinds a test can inject and the error bodies the real API would send for them."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .types import HELP, JsonObject, Reply, error_reply

_RPC = "type.googleapis.com/google.rpc."
_QUOTA_METRIC = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
_MINUTE_QUOTA = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
_DAY_QUOTA = "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
_HTML = {"Content-Type": "text/html; charset=UTF-8"}
_HTML_502 = b"<!DOCTYPE html><html lang=en><title>Error 502 (Server Error)!!1</title><p><b>502.</b> That's an error."
_NOT_JSON = b"<!DOCTYPE html><html><head><title>Network login</title></head><body>Sign in to continue</body></html>"
UNREGISTERED = ("Method doesn't allow unregistered callers (callers without established identity). "
                 "Please use API Key or other form of API consumer identity to call this API.")

@dataclass(frozen=True)
class Fault:
    """One injected failure or slowdown, consumed by the next generateContent request."""

    kind: str
    code: int = 200
    status: str = ""
    message: str = ""
    reason: str = ""
    retry_delay: str | None = None
    quota_id: str = ""
    quota_value: str = ""
    seconds: float = 0.0

    @classmethod
    def rate_limit(cls, retry_delay: str = "17s", quota_id: str = _MINUTE_QUOTA) -> Fault:
        """429 RESOURCE_EXHAUSTED with QuotaFailure and RetryInfo details and a Retry-After header."""
        return cls("rate_limit", 429, "RESOURCE_EXHAUSTED", retry_delay=retry_delay, quota_id=quota_id,
                   quota_value="10")

    @classmethod
    def daily_quota(cls) -> Fault:
        """429 RESOURCE_EXHAUSTED for the per-day quota: QuotaFailure, no RetryInfo, no Retry-After."""
        return cls("daily_quota", 429, "RESOURCE_EXHAUSTED", quota_id=_DAY_QUOTA, quota_value="100")

    @classmethod
    def server_error(cls, code: int = 500) -> Fault:
        """A 5xx: 500 INTERNAL, 502 (HTML body, like a proxy), 503 UNAVAILABLE or 504 DEADLINE_EXCEEDED."""
        status = {502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}.get(code, "INTERNAL")
        message = {504: "Deadline expired before operation could complete.",
                   503: "The service is currently unavailable."}.get(code, f"An internal error has occurred. {HELP}")
        return cls("server_error", code, status, message)

    @classmethod
    def overloaded(cls) -> Fault:
        """503 UNAVAILABLE: the model is overloaded."""
        return cls("overloaded", 503, "UNAVAILABLE", "The model is overloaded. Please try again later.")

    @classmethod
    def blocked(cls, reason: str = "PROHIBITED_CONTENT") -> Fault:
        """200 with promptFeedback.blockReason and no candidates."""
        return cls("blocked", reason=reason)

    @classmethod
    def no_image(cls, finish_reason: str = "IMAGE_SAFETY") -> Fault:
        """200 with one candidate that has a finishReason and no content."""
        return cls("no_image", reason=finish_reason)

    @classmethod
    def continuation(cls, text: str = "Working on it: the scene has many parts") -> Fault:
        """200 with one candidate that ends with finishReason CONTINUATION and a continuationToken, no image (the
        SDK's automatic continuation would send the request again with the token)."""
        return cls("continuation", reason="CONTINUATION", message=text)

    @classmethod
    def text_only(cls, text: str = "I can't draw that. Could you describe what you would like instead?") -> Fault:
        """200 with one STOP candidate holding only a text part."""
        return cls("text_only", message=text)

    @classmethod
    def bad_key(cls) -> Fault:
        """400 INVALID_ARGUMENT "API key not valid" with ErrorInfo reason API_KEY_INVALID."""
        message = "API key not valid. Please pass a valid API key."
        return cls("bad_key", 400, "INVALID_ARGUMENT", message, "API_KEY_INVALID")

    @classmethod
    def permission_denied(cls) -> Fault:
        """403 PERMISSION_DENIED."""
        return cls("permission_denied", 403, "PERMISSION_DENIED", "The caller does not have permission")

    @classmethod
    def not_found(cls) -> Fault:
        """404 NOT_FOUND for the requested model, worded like the real API."""
        return cls("not_found", 404, "NOT_FOUND")

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Wait this many seconds, then answer normally."""
        return cls("delay", seconds=float(seconds))

    @classmethod
    def drop_connection(cls) -> Fault:
        """Close the connection without sending any response."""
        return cls("drop_connection")

    @classmethod
    def not_json(cls) -> Fault:
        """200 with an HTML (non-JSON) body, like a captive portal."""
        return cls("not_json")


def fails(fault: Fault | None) -> bool:
    """Whether a fault answers instead of the model: an HTTP error, an HTML body or a dropped connection."""
    return fault is not None and (fault.code != 200 or fault.kind in ("not_json", "drop_connection"))


def not_found_reply(model: str | None) -> Reply:
    """The 404 the real API sends for an unknown model."""
    return error_reply(404, "NOT_FOUND", f"models/{model} is not found for API version v1beta, or is not supported "
                       "for generateContent. Call ListModels to see the list of available models and their supported "
                       "methods.")


def _quota_details(fault: Fault, model: str | None) -> list[JsonObject]:
    violation = {"quotaMetric": _QUOTA_METRIC, "quotaId": fault.quota_id,
                 "quotaDimensions": {"location": "global", "model": model or ""}, "quotaValue": fault.quota_value}
    links = [{"description": "Learn more about Gemini API quotas",
              "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]
    details: list[JsonObject] = [{"@type": _RPC + "Help", "links": links},
                                 {"@type": _RPC + "QuotaFailure", "violations": [violation]}]
    if fault.retry_delay:
        details.append({"@type": _RPC + "RetryInfo", "retryDelay": fault.retry_delay})
    return details


def fault_reply(fault: Fault, model: str | None) -> Reply:
    """The whole reply for a fault that is not a normal 200 answer: an error body, or HTML where a proxy sends it."""
    if fault.kind == "not_json":
        return 200, dict(_HTML), _NOT_JSON
    if fault.kind == "not_found":
        return not_found_reply(model)
    if fault.code == 502:
        return 502, dict(_HTML), _HTML_502
    if fault.code == 429:
        retry = f"\nPlease retry in {fault.retry_delay}." if fault.retry_delay else ""
        message = ("You exceeded your current quota, please check your plan and billing details. For more information "
                   "on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.\n* Quota exceeded for "
                   f"metric: {_QUOTA_METRIC}, limit: {fault.quota_value}, model: {model}{retry}")
        headers = {"Retry-After": str(math.ceil(float(fault.retry_delay.rstrip("s"))))} if fault.retry_delay else {}
        return error_reply(429, fault.status, message, _quota_details(fault, model), headers)
    details: list[JsonObject] | None = None
    if fault.reason:
        details = [{"@type": _RPC + "ErrorInfo", "reason": fault.reason, "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"}},
                   {"@type": _RPC + "LocalizedMessage", "locale": "en-US", "message": fault.message}]
    return error_reply(fault.code, fault.status, fault.message, details)
