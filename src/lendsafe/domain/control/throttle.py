"""Login throttling: exponential lockout after repeated failures (per user and per address).

After ``free_attempts`` failures in a row, each further failure locks the key for
``base_seconds · 2^(failures − free_attempts)``, capped at ``cap_seconds``. A success resets.
Time is passed in as microseconds since the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ThrottlePolicy", "ThrottleState", "after_failure", "locked"]

_MICRO = 1_000_000


@dataclass(frozen=True)
class ThrottlePolicy:
    """How fast lockouts grow."""

    free_attempts: int = 3
    base_seconds: int = 2
    cap_seconds: int = 900


@dataclass(frozen=True)
class ThrottleState:
    """Failures in a row and when the lock ends."""

    failures: int = 0
    locked_until_micros: int = 0


def after_failure(state: ThrottleState, now_micros: int, policy: ThrottlePolicy
                  ) -> ThrottleState:
    """The state after one more failure at ``now_micros``."""
    failures = state.failures + 1
    if failures < policy.free_attempts:
        return ThrottleState(failures, state.locked_until_micros)
    exponent = min(failures - policy.free_attempts, 30)
    seconds = min(policy.base_seconds * 2**exponent, policy.cap_seconds)
    return ThrottleState(failures, now_micros + seconds * _MICRO)


def locked(state: ThrottleState, now_micros: int) -> bool:
    """True while a lock is in force."""
    return now_micros < state.locked_until_micros
