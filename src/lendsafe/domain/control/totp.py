"""HOTP (RFC 4226) and TOTP (RFC 6238) by hand: ``hmac`` from the standard library, time in.

The checked vectors: RFC 6238 Appendix B, SHA-1 secret ``12345678901234567890``, time 59 →
``94287082`` (8 digits); RFC 4226 Appendix D, counter 0 → ``755224``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["hotp", "totp", "verify_totp"]


def hotp(secret: bytes, counter: int, digits: int = 6) -> str:
    """RFC 4226 one-time password for ``counter`` (HMAC-SHA1, dynamic truncation)."""
    digest = hmac.new(secret, counter.to_bytes(8, "big"), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = int.from_bytes(digest[offset:offset + 4], "big") & 0x7FFFFFFF
    return str(code % 10**digits).zfill(digits)


def totp(secret: bytes, unix_seconds: int, step_seconds: int = 30, digits: int = 6) -> str:
    """RFC 6238 time-based one-time password at ``unix_seconds``."""
    return hotp(secret, unix_seconds // step_seconds, digits)


def verify_totp(secret: bytes, code: str, unix_seconds: int, window: int = 1,
                step_seconds: int = 30) -> bool:
    """True when ``code`` matches a step within ``window`` steps of now (constant-time compare)."""
    if not code.isdigit():
        return False
    counter = unix_seconds // step_seconds
    return any(hmac.compare_digest(hotp(secret, counter + d, len(code)), code)
               for d in range(-window, window + 1))


def secret_to_base32(secret: bytes) -> str:
    """The base32 form authenticator apps take (no padding)."""
    return base64.b32encode(secret).decode().rstrip("=")
