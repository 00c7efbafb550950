"""Envelope encryption of personal data with AES-256-GCM (``cryptography``).

Each record gets its own random 256-bit *data key*; the record (canonical JSON) is sealed
with it, and the data key is *wrapped* (sealed) with a key-encryption key (KEK) from
``LENDSAFE_MASTER_KEYS = "kid:base64key,…"`` — the first is current. Rotation re-wraps data
keys under the current KEK without touching the records. Layout of both blobs:
``nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)``; the associated data binds a data key to
its KEK id and a record to its owner (``borrower:<id>``), so blobs cannot be swapped.

The phone index (for one-time-code login) is HMAC-SHA256 of the normalised phone under a
key derived from the current KEK; rotation recomputes it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE = 12


class KeyRingError(ValueError):
    """Bad key configuration or a blob that does not decrypt."""


@dataclass(frozen=True)
class Sealed:
    """An encrypted record: which KEK wrapped its data key, the wrapped key, the ciphertext."""

    kek_id: str
    wrapped_key: bytes
    ciphertext: bytes


class KeyRing:
    """Key-encryption keys by id; the first is current."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise KeyRingError("no master keys configured")
        for kid, key in keys:
            if len(key) != 32 or not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", kid):
                raise KeyRingError(f"master key {kid!r} must be 32 bytes with a short id")
        self.keys = dict(keys)
        self.current = keys[0][0]

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """From ``"kid:base64key,kid2:base64key2"``."""
        pairs = []
        for item in filter(None, (p.strip() for p in text.split(","))):
            kid, _, encoded = item.partition(":")
            try:
                pairs.append((kid, base64.b64decode(encoded, validate=True)))
            except ValueError:
                raise KeyRingError(f"master key {kid!r} is not base64") from None
        return cls(pairs)

    @classmethod
    def development(cls, path: Path) -> KeyRing:
        """A generated key kept in a 0600 file: only when ``LENDSAFE_MASTER_KEYS`` is unset."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            line = "dev1:" + base64.b64encode(secrets.token_bytes(32)).decode()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(line)
        return cls.parse(path.read_text().strip())

    def _kek(self, kid: str) -> AESGCM:
        key = self.keys.get(kid)
        if key is None:
            raise KeyRingError(f"master key {kid!r} is not configured")
        return AESGCM(key)

    def seal(self, document: dict[str, Any], owner: str) -> Sealed:
        """Encrypt ``document`` for ``owner`` under a fresh data key wrapped by the current KEK."""
        data_key = AESGCM.generate_key(bit_length=256)
        plaintext = json.dumps(document, sort_keys=True, ensure_ascii=False).encode()
        return Sealed(self.current, self._wrap(self.current, data_key),
                      _encrypt(AESGCM(data_key), plaintext, owner.encode()))

    def open(self, sealed: Sealed, owner: str) -> dict[str, Any]:
        """Decrypt a record; :class:`KeyRingError` if any part was altered or swapped."""
        data_key = self._unwrap(sealed.kek_id, sealed.wrapped_key)
        plaintext = _decrypt(AESGCM(data_key), sealed.ciphertext, owner.encode())
        result: dict[str, Any] = json.loads(plaintext)
        return result

    def rewrap(self, sealed: Sealed) -> Sealed:
        """The same record with its data key wrapped by the current KEK."""
        data_key = self._unwrap(sealed.kek_id, sealed.wrapped_key)
        return Sealed(self.current, self._wrap(self.current, data_key), sealed.ciphertext)

    def _wrap(self, kid: str, data_key: bytes) -> bytes:
        return _encrypt(self._kek(kid), data_key, f"lendsafe-dek-v1|{kid}".encode())

    def _unwrap(self, kid: str, wrapped: bytes) -> bytes:
        return _decrypt(self._kek(kid), wrapped, f"lendsafe-dek-v1|{kid}".encode())

    def phone_index(self, phone: str) -> str:
        """A keyed, deterministic index of a phone number (digits only) for look-ups."""
        key = hashlib.sha256(b"lendsafe-phone-index|" + self.keys[self.current]).digest()
        return hmac.new(key, normalise_phone(phone).encode(), hashlib.sha256).hexdigest()


def normalise_phone(phone: str) -> str:
    """Digits only, with a leading + kept."""
    digits = re.sub(r"\D", "", phone)
    return ("+" if phone.strip().startswith("+") else "") + digits


def _encrypt(cipher: AESGCM, plaintext: bytes, associated: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return nonce + cipher.encrypt(nonce, plaintext, associated)


def _decrypt(cipher: AESGCM, blob: bytes, associated: bytes) -> bytes:
    try:
        return cipher.decrypt(blob[:_NONCE], blob[_NONCE:], associated)
    except (InvalidTag, ValueError):
        raise KeyRingError("the encrypted data does not open (altered, or wrong key)") from None
