"""Password hashing with argon2id (``argon2-cffi``); hashes carry their own parameters."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# RFC 9106 "second recommended" profile scaled down for a 2-core server: 64 MiB, t=3, p=1
_HASHER = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=1)
# a hash of a random password, checked when the user does not exist (same time spent)
_DUMMY = _HASHER.hash("lendsafe-no-such-user")
MIN_LENGTH = 12


def hash_password(password: str) -> str:
    """An argon2id hash (PHC string) of ``password``."""
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored``; spends the same time when ``stored`` is None."""
    try:
        return _HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """True when ``stored`` was made with weaker parameters than today's."""
    return _HASHER.check_needs_rehash(stored)
