"""Signed tree heads (STH): a ledger's size and Merkle root at a moment, in a canonical form.

The bytes that get signed (:meth:`TreeHead.signing_bytes`) are, in this fixed order::

    b"lendsafe-sth-v1\\n"                      16 bytes, version tag (domain separation)
    len(ledger_id) as uint16 big-endian       2 bytes
    ledger_id encoded as UTF-8                1..1024 bytes, as given (no normalisation)
    size as uint64 big-endian                 8 bytes
    len(root) as uint8 (always 32)            1 byte
    root                                      32 bytes, the RFC 6962 root of the first ``size``
                                              leaves (see ``merkle.py``)
    issued_at as int64 big-endian             8 bytes, microseconds since 1970-01-01T00:00:00Z

The signature is not part of the signed bytes. Every length is explicit, so no two different
heads share an encoding. The JSON form (:meth:`TreeHead.to_json`) carries the same fields with
``root`` and ``signature`` in lower-case hex and ``issued_at`` as ISO 8601 UTC with microseconds
(``2024-01-31T12:00:00.000000Z``), plus ``"version": "lendsafe-sth-v1"``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["STH_VERSION", "TreeHead", "TreeHeadError"]

STH_VERSION = "lendsafe-sth-v1"
_MAGIC = (STH_VERSION + "\n").encode("ascii")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_MAX_ID_BYTES = 1024
_ROOT_SIZE = 32
_JSON_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"
_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_JSON_KEYS = frozenset({"version", "ledger_id", "size", "root", "issued_at", "signature"})


class TreeHeadError(ValueError):
    """A tree head, or its JSON form, is malformed."""


@dataclass(frozen=True, slots=True)
class TreeHead:
    """A ledger's size and root at ``issued_at`` (aware, UTC), optionally signed.

    ``issued_at`` must be timezone-aware with a zero UTC offset; it is stored with
    ``tzinfo=UTC`` so that equal instants compare and encode equally.
    """

    ledger_id: str
    size: int
    root: bytes
    issued_at: datetime
    signature: bytes | None = None

    def __post_init__(self) -> None:
        _check_ledger_id(self.ledger_id)
        if not isinstance(self.size, int) or isinstance(self.size, bool):
            raise TreeHeadError("size must be an int")
        if not 0 <= self.size < 1 << 64:
            raise TreeHeadError("size must fit in an unsigned 64-bit integer")
        if not isinstance(self.root, bytes) or len(self.root) != _ROOT_SIZE:
            raise TreeHeadError("root must be 32 bytes")
        if self.signature is not None and not isinstance(self.signature, bytes):
            raise TreeHeadError("signature must be bytes or None")
        object.__setattr__(self, "issued_at", _utc(self.issued_at))

    def signing_bytes(self) -> bytes:
        """The canonical encoding to sign (see the module docstring); excludes the signature."""
        ledger_id = self.ledger_id.encode("utf-8")
        micros = (self.issued_at - _EPOCH) // _MICRO
        return b"".join(
            (
                _MAGIC,
                len(ledger_id).to_bytes(2, "big"),
                ledger_id,
                self.size.to_bytes(8, "big"),
                len(self.root).to_bytes(1, "big"),
                self.root,
                micros.to_bytes(8, "big", signed=True),
            )
        )

    def with_signature(self, signature: bytes | None) -> TreeHead:
        """A copy carrying ``signature``."""
        return replace(self, signature=signature)

    def unsigned(self) -> TreeHead:
        """A copy without a signature."""
        return replace(self, signature=None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (hex bytes, ISO 8601 UTC time)."""
        return {
            "version": STH_VERSION,
            "ledger_id": self.ledger_id,
            "size": self.size,
            "root": self.root.hex(),
            "issued_at": _format_time(self.issued_at),
            "signature": None if self.signature is None else self.signature.hex(),
        }

    def to_json(self) -> str:
        """Compact JSON with sorted keys."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TreeHead:
        """Inverse of :meth:`to_dict`; raises :class:`TreeHeadError` when malformed."""
        if not isinstance(data, dict) or set(data) != _JSON_KEYS:
            raise TreeHeadError(f"a tree head needs exactly the keys {sorted(_JSON_KEYS)}")
        if data["version"] != STH_VERSION:
            raise TreeHeadError(f"unsupported tree head version {data['version']!r}")
        signature = data["signature"]
        return cls(
            ledger_id=data["ledger_id"],
            size=data["size"],
            root=_unhex(data["root"], "root"),
            issued_at=_parse_time(data["issued_at"]),
            signature=None if signature is None else _unhex(signature, "signature"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> TreeHead:
        """Inverse of :meth:`to_json`."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise TreeHeadError(f"tree head is not JSON: {exc}") from exc
        return cls.from_dict(data)


def _check_ledger_id(ledger_id: object) -> None:
    if not isinstance(ledger_id, str):
        raise TreeHeadError("ledger_id must be a str")
    try:
        encoded = ledger_id.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TreeHeadError("ledger_id must be valid Unicode") from exc
    if not 1 <= len(encoded) <= _MAX_ID_BYTES:
        raise TreeHeadError(f"ledger_id must be 1..{_MAX_ID_BYTES} bytes of UTF-8")


def _utc(moment: object) -> datetime:
    if not isinstance(moment, datetime):
        raise TreeHeadError("issued_at must be a datetime")
    offset = moment.utcoffset()
    if offset is None:
        raise TreeHeadError("issued_at must be timezone-aware")
    if offset != timedelta(0):
        raise TreeHeadError("issued_at must be in UTC")
    return moment.replace(tzinfo=UTC)


def _unhex(value: object, name: str) -> bytes:
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise TreeHeadError(f"{name} must be a lower-case hex string of whole bytes")
    return bytes.fromhex(value)


def _format_time(moment: datetime) -> str:
    m = moment
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T"
        f"{m.hour:02d}:{m.minute:02d}:{m.second:02d}.{m.microsecond:06d}Z"
    )


def _parse_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise TreeHeadError("issued_at must be a string")
    try:
        moment = datetime.strptime(value, _JSON_TIME).replace(tzinfo=UTC)
    except ValueError as exc:
        raise TreeHeadError(f"issued_at must look like 2024-01-31T12:00:00.000000Z: {exc}") from exc
    if _format_time(moment) != value:
        raise TreeHeadError(f"issued_at {value!r} is not in canonical form")
    return moment
