"""A fault-injecting wrapper around any channel adapter, for drills across processes.

:class:`FaultyChannel` makes a real adapter (normally the :class:`FileChannel`, whose file
is the provider's own record) misbehave with seeded probabilities:

* ``error``: refuse without sending -> ``failed``;
* ``timeout_before``: give up before sending -> ``timeout_unknown`` (nothing went out);
* ``timeout_after``: send, then lose the answer -> ``timeout_unknown`` (it *did* go out);
* ``was_sent_unknown``: ``was_sent`` answers ``None`` (the provider cannot tell);
* ``slow_ms``: sleep this long per send.

``LENDSAFE_CHANNEL_FAULTS="seed=7,error=0.05,timeout_before=0.05,timeout_after=0.05"``
configures it from the environment (:func:`faults_from_env`); each process mixes its pid
into the seed so that concurrent workers do not fail in lockstep.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lendsafe.adapters.channels.base import (
    ChannelAdapter,
    ChannelError,
    OutboundMessage,
    SendOutcome,
    SendResult,
)

FAULTS_ENV = "LENDSAFE_CHANNEL_FAULTS"


@dataclass(frozen=True)
class Faults:
    """Probabilities (0..1) of each injected fault, and a seed."""

    seed: int = 0
    error: float = 0.0
    timeout_before: float = 0.0
    timeout_after: float = 0.0
    was_sent_unknown: float = 0.0
    slow_ms: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Faults:
        """``"seed=7,error=0.05"`` -> :class:`Faults`; unknown names are a ChannelError."""
        values: dict[str, float] = {}
        for item in filter(None, (p.strip() for p in text.split(","))):
            name, sep, value = item.partition("=")
            if not sep or name not in cls.__dataclass_fields__:
                raise ChannelError(f"{FAULTS_ENV}: bad item {item!r} (names: "
                                   f"{', '.join(cls.__dataclass_fields__)})")
            values[name] = float(value)
        seed = int(values.pop("seed", 0))
        return cls(seed=seed, **values)


class FaultyChannel:
    """Wraps an adapter and injects the configured faults."""

    def __init__(self, inner: ChannelAdapter, faults: Faults, *, salt: int = 0) -> None:
        self.inner = inner
        self.faults = faults
        self._rng = random.Random(faults.seed * 1_000_003 + salt)

    def send(self, message: OutboundMessage) -> SendResult:
        """Send through the wrapped adapter unless a fault is drawn."""
        f = self.faults
        if f.slow_ms:
            time.sleep(f.slow_ms / 1000)
        draw = self._rng.random()
        if draw < f.error:
            return SendResult(SendOutcome.FAILED, None, "injected provider error")
        if draw < f.error + f.timeout_before:
            return SendResult(SendOutcome.TIMEOUT_UNKNOWN, None, "injected timeout before send")
        result = self.inner.send(message)
        if draw < f.error + f.timeout_before + f.timeout_after:
            return SendResult(SendOutcome.TIMEOUT_UNKNOWN, None, "injected timeout after send")
        return result

    def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        """:meth:`send` for each message (faults are drawn per message)."""
        return [self.send(message) for message in messages]

    def was_sent(self, dedup_key: str) -> bool | None:
        """The wrapped adapter's answer, or ``None`` when that fault is drawn."""
        if self._rng.random() < self.faults.was_sent_unknown:
            return None
        return self.inner.was_sent(dedup_key)


def faults_from_env(adapters: Mapping[str, ChannelAdapter],
                    environ: Mapping[str, str]) -> dict[str, ChannelAdapter]:
    """Wrap every adapter in a :class:`FaultyChannel` if ``LENDSAFE_CHANNEL_FAULTS`` is set."""
    text = environ.get(FAULTS_ENV)
    if not text:
        return dict(adapters)
    faults = Faults.parse(text)
    wrapped: dict[int, ChannelAdapter] = {}
    out: dict[str, ChannelAdapter] = {}
    for name, adapter in adapters.items():
        key = id(adapter)
        if key not in wrapped:
            wrapped[key] = FaultyChannel(adapter, faults, salt=os.getpid())
        out[name] = wrapped[key]
    return out
