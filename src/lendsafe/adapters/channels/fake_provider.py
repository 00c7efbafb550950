"""An in-memory fake provider with injectable failures, for outbox and failover tests.

It records exactly what it *accepted* (i.e. what a real provider would have
delivered), so a test can assert "each dedup key went out once" with
:meth:`FakeProvider.count`. Failures are injected per call (``fail_next``), per
dedup key (``fail_for``) or by a rule callable:

* ``ERROR``: rejected, nothing sent -> ``failed``;
* ``TIMEOUT_BEFORE_ACCEPT``: the request never arrived -> ``timeout_unknown``
  (``was_sent`` says False);
* ``TIMEOUT_AFTER_ACCEPT``: the provider took it but the answer was lost ->
  ``timeout_unknown`` (``was_sent`` says True) - the case that causes doubles if
  a worker blindly retries on another channel;
* ``SLOW``: sleeps ``slow_seconds`` (injectable ``sleep``) and then succeeds.

``idempotent=False`` models a provider without idempotency keys: a repeated
send is accepted (and counted) again. ``can_tell=False`` makes ``was_sent``
return ``None``. ``deliver=True`` returns ``delivered`` instead of ``accepted``.
"""

from __future__ import annotations

import enum
import itertools
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable

from lendsafe.adapters.channels.base import (
    ChannelError,
    OutboundMessage,
    SendOutcome,
    SendResult,
)
from lendsafe.domain.reminders.policy import CHANNELS


class FailureMode(enum.StrEnum):
    """What the fake should do with one send."""

    ERROR = "error"
    TIMEOUT_BEFORE_ACCEPT = "timeout_before_accept"
    TIMEOUT_AFTER_ACCEPT = "timeout_after_accept"
    SLOW = "slow"


FailureRule = Callable[[OutboundMessage, int], FailureMode | None]


class FakeProvider:
    """Thread-safe in-memory provider double; see the module docstring."""

    def __init__(
        self,
        *,
        name: str = "fake",
        channels: Iterable[str] | None = None,
        idempotent: bool = True,
        can_tell: bool = True,
        deliver: bool = False,
        slow_seconds: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        rule: FailureRule | None = None,
    ) -> None:
        self.name = name
        self.channels = frozenset(CHANNELS if channels is None else channels)
        self.idempotent, self.can_tell, self.deliver = idempotent, can_tell, deliver
        self.slow_seconds, self._sleep, self._rule = slow_seconds, sleep, rule
        self._lock = threading.Lock()
        self._queue: deque[FailureMode] = deque()
        self._per_key: dict[str, deque[FailureMode]] = {}
        self._ids = itertools.count(1)
        self._first_id: dict[str, str] = {}
        self.accepted: list[OutboundMessage] = []
        self.attempts: Counter[str] = Counter()

    def fail_next(self, mode: FailureMode, times: int = 1) -> None:
        """Apply ``mode`` to the next ``times`` sends, whatever their key."""
        with self._lock:
            self._queue.extend([mode] * times)

    def fail_for(self, dedup_key: str, mode: FailureMode, times: int = 1) -> None:
        """Apply ``mode`` to the next ``times`` sends of ``dedup_key``."""
        with self._lock:
            self._per_key.setdefault(dedup_key, deque()).extend([mode] * times)

    def count(self, dedup_key: str) -> int:
        """How many times a message with ``dedup_key`` was accepted (really went out)."""
        with self._lock:
            return sum(1 for m in self.accepted if m.dedup_key == dedup_key)

    def _failure_for(self, message: OutboundMessage) -> FailureMode | None:
        with self._lock:
            self.attempts[message.dedup_key] += 1
            attempt = self.attempts[message.dedup_key]
            per_key = self._per_key.get(message.dedup_key)
            if per_key:
                return per_key.popleft()
            if self._queue:
                return self._queue.popleft()
        return self._rule(message, attempt) if self._rule else None

    def _accept(self, message: OutboundMessage) -> tuple[str, bool]:
        """Record ``message``; returns its id and whether the key was seen before."""
        with self._lock:
            first = self._first_id.get(message.dedup_key)
            if first is not None and self.idempotent:
                return first, True
            message_id = f"{self.name}-{next(self._ids)}"
            self._first_id.setdefault(message.dedup_key, message_id)
            self.accepted.append(message)
            return message_id, first is not None

    def send(self, message: OutboundMessage) -> SendResult:
        """Send with whatever failure is scheduled for this call."""
        if message.channel not in self.channels:
            raise ChannelError(f"provider {self.name!r} does not serve {message.channel!r}")
        mode = self._failure_for(message)
        if mode is FailureMode.ERROR:
            return SendResult(SendOutcome.FAILED, None, "injected provider error")
        if mode is FailureMode.TIMEOUT_BEFORE_ACCEPT:
            return SendResult(SendOutcome.TIMEOUT_UNKNOWN, None, "injected timeout")
        if mode is FailureMode.SLOW:
            self._sleep(self.slow_seconds)
        message_id, repeated = self._accept(message)
        if mode is FailureMode.TIMEOUT_AFTER_ACCEPT:
            return SendResult(SendOutcome.TIMEOUT_UNKNOWN, None, "injected timeout after accept")
        if repeated and self.idempotent:
            return SendResult(SendOutcome.ACCEPTED, message_id)
        outcome = SendOutcome.DELIVERED if self.deliver else SendOutcome.ACCEPTED
        return SendResult(outcome, message_id)

    def was_sent(self, dedup_key: str) -> bool | None:
        """True/False from the record, or ``None`` when built with ``can_tell=False``."""
        if not self.can_tell:
            return None
        with self._lock:
            return dedup_key in self._first_id
