"""Login throttling: exponential lockout after repeated failures (per user and per address).

After ``free_attempts`` failures in a row, each further failure locks the key for
``base_seconds · 2^(failures − free_attempts)``, capped at ``cap_seconds``. Failures older
than ``window_seconds`` are forgotten; a success resets the user's key. Addresses get a
larger allowance than users (many people share one address behind NAT). Time is passed in
as microseconds since the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ADDRESS_POLICY", "USER_POLICY", "ThrottlePolicy", "ThrottleState", "after_failure",
           "locked"]

_MICRO = 1_000_000


@dataclass(frozen=True)
class ThrottlePolicy:
    """How fast lockouts grow."""

    free_attempts: int = 3
    base_seconds: int = 2
    cap_seconds: int = 900
    window_seconds: int = 3600


USER_POLICY = ThrottlePolicy()
ADDRESS_POLICY = ThrottlePolicy(free_attempts=20, base_seconds=2, cap_seconds=900)


@dataclass(frozen=True)
class ThrottleState:
    """Failures in a row, the last one, and when the lock ends."""

    failures: int = 0
    locked_until_micros: int = 0
    last_failure_micros: int = 0


def after_failure(state: ThrottleState, now_micros: int, policy: ThrottlePolicy
                  ) -> ThrottleState:
    """The state after one more failure at ``now_micros``."""
    stale = now_micros - state.last_failure_micros > policy.window_seconds * _MICRO
    failures = 1 if stale else state.failures + 1
    if failures < policy.free_attempts:
        return ThrottleState(failures, state.locked_until_micros, now_micros)
    exponent = min(failures - policy.free_attempts, 30)
    seconds = min(policy.base_seconds * 2**exponent, policy.cap_seconds)
    return ThrottleState(failures, now_micros + seconds * _MICRO, now_micros)


def locked(state: ThrottleState, now_micros: int) -> bool:
    """True while a lock is in force."""
    return now_micros < state.locked_until_micros
