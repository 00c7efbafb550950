"""Masking of personal data for people without ``pii.read`` (pure string rules).

``13812345678`` → ``138****5678``; ``110101199003071234`` → ``110***********1234``;
``张三丰`` → ``张**``; ``Alice Smith`` → ``A**** S****``; an address keeps its first six
characters. Short values are masked whole.
"""

from __future__ import annotations

__all__ = ["mask_address", "mask_name", "mask_national_id", "mask_phone", "mask_pii"]


def mask_phone(value: str) -> str:
    """Keep the first three and last four digits."""
    if len(value) <= 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_national_id(value: str) -> str:
    """Keep the first three and last four characters."""
    if len(value) <= 8:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_name(value: str) -> str:
    """Keep the first character of each word."""
    words = value.split(" ")
    if len(words) == 1:
        return value[:1] + "*" * max(len(value) - 1, 1)
    return " ".join(w[:1] + "*" * (len(w) - 1) for w in words)


def mask_address(value: str) -> str:
    """Keep the first six characters."""
    return value[:6] + "***" if len(value) > 6 else "***"


_MASKS = {"name": mask_name, "national_id": mask_national_id, "phone": mask_phone,
          "address": mask_address}


def mask_pii(fields: dict[str, str | None]) -> dict[str, str | None]:
    """Mask every known personal-data field (unknown fields are dropped)."""
    return {k: (None if v is None else _MASKS[k](v)) for k, v in fields.items() if k in _MASKS}
