"""Ed25519 signing of ledger tree heads, with the private key kept in a PEM file (mode 0600).

Uses the ``cryptography`` package. What is signed is :meth:`TreeHead.signing_bytes`, the
canonical encoding documented in ``lendsafe.domain.ledger.tree_head``. Public keys travel as
PEM (SubjectPublicKeyInfo) or as the raw 32-byte Ed25519 key; :func:`key_id` names a key by the
first 16 hex digits of SHA-256 over its raw bytes.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from lendsafe.domain.ledger.tree_head import TreeHead

__all__ = [
    "KeyFileError",
    "TreeHeadSigner",
    "export_public_key",
    "import_public_key",
    "key_id",
    "load_or_create_private_key",
    "sign_tree_head",
    "verify_tree_head",
]

_KEY_MODE = 0o600


class KeyFileError(RuntimeError):
    """The key file is unreadable, not an Ed25519 PEM key, or readable by others."""


def load_or_create_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Load the Ed25519 key at ``path``, creating it (PKCS#8 PEM, mode 0600) if absent.

    Creation uses ``O_CREAT | O_EXCL`` so two processes racing cannot both write a key; the
    loser loads the winner's. An existing file that group or others may read or write is
    refused with :class:`KeyFileError` rather than silently trusted.
    """
    key_path = Path(path)
    if not key_path.exists():
        try:
            return _create(key_path)
        except FileExistsError:
            pass
    return _load(key_path)


def _create(path: Path) -> Ed25519PrivateKey:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _KEY_MODE)
    try:
        os.fchmod(fd, _KEY_MODE)  # the umask may have narrowed it; make it exact
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    return key


def _load(path: Path) -> Ed25519PrivateKey:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(f"{path} has mode {mode:o}; signing keys must be 0600")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def export_public_key(key: Ed25519PublicKey | Ed25519PrivateKey, *, raw: bool = False) -> bytes:
    """The public key as PEM (SubjectPublicKeyInfo), or its 32 raw bytes if ``raw``."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    if raw:
        return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def import_public_key(data: bytes) -> Ed25519PublicKey:
    """Read a public key from PEM or from 32 raw bytes; raises ``ValueError`` otherwise."""
    if len(data) == 32:
        return Ed25519PublicKey.from_public_bytes(data)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ValueError("not a PEM public key or 32 raw Ed25519 bytes") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"expected an Ed25519 public key, got {type(key).__name__}")
    return key


def key_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """A short, stable name for a key: 16 hex digits of SHA-256 over the raw public key."""
    return hashlib.sha256(export_public_key(key, raw=True)).hexdigest()[:16]


def sign_tree_head(head: TreeHead, key: Ed25519PrivateKey) -> TreeHead:
    """A copy of ``head`` carrying an Ed25519 signature over its canonical bytes."""
    return head.with_signature(key.sign(head.signing_bytes()))


def verify_tree_head(head: TreeHead, public_key: Ed25519PublicKey) -> bool:
    """True iff ``head`` carries a valid signature by ``public_key``; never raises on bad input."""
    if head.signature is None or len(head.signature) != 64:
        return False
    try:
        public_key.verify(head.signature, head.signing_bytes())
    except InvalidSignature:
        return False
    return True


class TreeHeadSigner:
    """Signs tree heads with one private key; built from a key file or a key object."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TreeHeadSigner:
        """Load (or create) the key at ``path`` — see :func:`load_or_create_private_key`."""
        return cls(load_or_create_private_key(path))

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The matching public key."""
        return self._key.public_key()

    @property
    def key_id(self) -> str:
        """See :func:`key_id`."""
        return key_id(self._key)

    def sign(self, head: TreeHead) -> TreeHead:
        """See :func:`sign_tree_head`."""
        return sign_tree_head(head, self._key)

    def verify(self, head: TreeHead) -> bool:
        """See :func:`verify_tree_head`, against this signer's own public key."""
        return verify_tree_head(head, self.public_key)
