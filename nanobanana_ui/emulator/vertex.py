"""Emulator's Vertex AI side: the v1beta1 publisher-model paths, an OAuth token endpoint, bearer checks, JPEG output.

Vertex calls arrive as ``/v1beta1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent`` (or,
with an express-mode API key, ``/v1beta1/publishers/google/models/{m}:generateContent``); they are answered by the
same code as the Gemini API paths, after these checks. ``POST /token`` plays Google's OAuth token endpoint for a
service account: it takes the signed JWT that google-auth sends (grant type jwt-bearer), checks its signature when
the test registered the account's public key, and hands out a short opaque access token.
"""

from __future__ import annotations

import base64
import io
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from PIL import Image

from .types import JsonObject, Reply, VertexCall, error_reply

__all__ = ["TokenIssuer", "jpeg_output", "vertex_call"]

_VERTEX = re.compile(r"^/v1beta1/(?:projects/([^/]+)/locations/([^/]+)/)?publishers/google/models(/[^/]*)?$")
_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_UNAUTHENTICATED = ("Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
                    "other valid authentication credential.")


def vertex_call(url: str, headers: dict[str, str]) -> tuple[VertexCall, str] | None:
    """For a Vertex URL: the call's details and the equivalent Gemini API URL; None for any other URL."""
    parts = urlsplit(url)
    match = _VERTEX.match(parts.path)
    if match is None:
        return None
    project, location, rest = match.group(1), match.group(2), match.group(3) or ""
    auth = headers.get("authorization", "")
    token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None
    gemini_url = f"/v1beta/models{rest}" + (f"?{parts.query}" if parts.query else "")
    return VertexCall(parts.path, project, location, token), gemini_url


@dataclass
class TokenIssuer:
    """Google's OAuth token endpoint in miniature: JWT assertions in, short-lived access tokens out."""

    lifetime_s: int = 3600
    public_keys: dict[str, bytes] = field(default_factory=dict)  # service account email -> PEM public key
    grants: list[dict[str, object]] = field(default_factory=list)  # each JWT's claims, in order (for assertions)
    _tokens: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def grant(self, raw: bytes) -> Reply:
        """Answer one token request as oauth2.googleapis.com/token would."""
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != _JWT_BEARER or "assertion" not in form:
            return 400, {}, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type."}
        claims = self._claims(form["assertion"])
        if claims is None:
            return 400, {}, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        if float(str(claims.get("exp", 0))) < time.time():
            return 400, {}, {"error": "invalid_grant", "error_description": "Invalid JWT: Token must be a "
                                                                            "short-lived token and in a reasonable "
                                                                            "timeframe."}
        token = "ya29.emulator-" + secrets.token_urlsafe(16)
        with self._lock:
            self.grants.append(claims)
            self._tokens[token] = time.monotonic() + self.lifetime_s
        return 200, {}, {"access_token": token, "expires_in": self.lifetime_s, "token_type": "Bearer"}

    def _claims(self, assertion: str) -> dict[str, object] | None:
        """The JWT's claims if it is well formed (and, for a registered account, signed by its key)."""
        try:
            head, body, signature = assertion.split(".")
            claims = json.loads(_unb64(body))
        except ValueError:
            return None
        if not isinstance(claims, dict):
            return None
        key = self.public_keys.get(str(claims.get("iss")))
        if key is not None and not _signed_by(key, f"{head}.{body}".encode(), _unb64(signature)):
            return None
        return claims

    def check(self, call: VertexCall) -> None:
        """Set the call's auth_error when its bearer token was never issued or has expired (an API key passes)."""
        if call.token is None:
            return
        with self._lock:
            expires = self._tokens.get(call.token)
        if expires is None or expires < time.monotonic():
            call.auth_error = error_reply(401, "UNAUTHENTICATED", _UNAUTHENTICATED)

    def expire_all(self) -> None:
        """Make every token issued so far expired, as an hour's wait would."""
        with self._lock:
            self._tokens = dict.fromkeys(self._tokens, 0.0)


def jpeg_output(reply: Reply, generation_config: JsonObject) -> tuple[Reply, list[bytes]]:
    """Re-encode the answer's images as JPEG when imageConfig.imageOutputOptions asks for image/jpeg (Vertex only).

    The SDK's ImageConfig.output_mime_type / output_compression_quality travel as imageOutputOptions.mimeType /
    compressionQuality on Vertex (the Gemini API has neither: the SDK refuses them there).
    """
    image_config = generation_config.get("imageConfig")
    output = image_config.get("imageOutputOptions") if isinstance(image_config, dict) else None
    if not isinstance(output, dict) or output.get("mimeType") != "image/jpeg" or reply[0] != 200:
        return reply, []
    quality = int(output.get("compressionQuality") or 75)
    body = reply[2]
    images: list[bytes] = []
    for candidate in body.get("candidates", []) if isinstance(body, dict) else []:
        for part in candidate.get("content", {}).get("parts", []):
            inline = part.get("inlineData")
            if not inline or part.get("thought"):
                continue
            with Image.open(io.BytesIO(base64.b64decode(inline["data"]))) as png:
                buf = io.BytesIO()
                png.convert("RGB").save(buf, "JPEG", quality=quality)
            images.append(buf.getvalue())
            inline.update(mimeType="image/jpeg", data=base64.b64encode(buf.getvalue()).decode("ascii"))
    return reply, images


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signed_by(public_pem: bytes, message: bytes, signature: bytes) -> bool:
    """True if an RS256 signature over message verifies with the PEM public key."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = serialization.load_pem_public_key(public_pem)
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    try:
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True
