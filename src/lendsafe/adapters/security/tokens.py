"""Short-lived session tokens: ``lst1.<payload>.<HMAC-SHA256>``, both parts base64url.

The payload is compact JSON ``{"sid", "sub", "iat", "exp"}`` (times in seconds since the
epoch). The signature proves the server issued it; the session id lets the server revoke it
before it expires (``sessions`` table). Keys live in a 0600 file created on first use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PREFIX = "lst1"


class TokenError(ValueError):
    """Malformed, forged or expired token (the message never says which to the caller)."""


@dataclass(frozen=True)
class TokenClaims:
    """What a valid token says."""

    session_id: str
    subject: str
    issued_at: int
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_or_create_key(path: Path) -> bytes:
    """32 random bytes kept in ``path`` (mode 0600), created on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load_or_create_key(path)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise PermissionError(f"{path} must have mode 0600")
    key = path.read_bytes()
    if len(key) < 32:
        raise ValueError(f"{path} must hold at least 32 bytes")
    return key


class TokenSigner:
    """Issues and checks tokens with one HMAC key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def issue(self, session_id: str, subject: str, issued_at: int, expires_at: int) -> str:
        """A signed token."""
        payload = json.dumps({"sid": session_id, "sub": subject, "iat": issued_at,
                              "exp": expires_at}, separators=(",", ":"), sort_keys=True)
        body = f"{PREFIX}.{_b64(payload.encode())}"
        return f"{body}.{_b64(self._mac(body))}"

    def _mac(self, body: str) -> bytes:
        return hmac.new(self._key, body.encode(), hashlib.sha256).digest()

    def check(self, token: str, now_seconds: int) -> TokenClaims:
        """The claims of a genuine, unexpired token; :class:`TokenError` otherwise."""
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != PREFIX or len(token) > 1024:
            raise TokenError("malformed token")
        try:
            signature = _unb64(parts[2])
        except ValueError:
            raise TokenError("malformed token") from None
        if not hmac.compare_digest(signature, self._mac(f"{parts[0]}.{parts[1]}")):
            raise TokenError("bad signature")
        try:
            data: dict[str, Any] = json.loads(_unb64(parts[1]))
            claims = TokenClaims(str(data["sid"]), str(data["sub"]), int(data["iat"]),
                                 int(data["exp"]))
        except (ValueError, KeyError, TypeError):
            raise TokenError("malformed token") from None
        if now_seconds >= claims.expires_at:
            raise TokenError("expired")
        return claims
