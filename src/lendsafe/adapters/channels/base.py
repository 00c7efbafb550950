"""The outbound channel port: what the reminder outbox hands to a channel, and what it gets back.

Every adapter (file, fake, Apprise, later real SMS/push gateways) implements
:class:`ChannelAdapter`. The contract the outbox worker relies on:

* ``send`` never raises for a delivery problem; it returns a :class:`SendResult`
  whose :class:`SendOutcome` says what is known:

  - ``accepted``: the provider took the message (no delivery receipt yet);
  - ``delivered``: the provider confirmed delivery to the handset/inbox;
  - ``failed``: the message was certainly **not** sent; failing over is safe;
  - ``timeout_unknown``: we do not know (request timed out after it may have
    been accepted). Before failing over or retrying, ask ``was_sent``; if that
    returns ``None`` the worker must decide by policy (wait for a receipt).

* ``send`` is idempotent per ``dedup_key`` where the provider supports it: a
  second send with a known key returns ``accepted`` with the first message id
  and sends nothing.
* ``was_sent(dedup_key)`` answers ``True``/``False`` when the provider can tell
  and ``None`` when it cannot.

Programming errors (a message for a channel the adapter does not serve,
malformed input) raise :class:`ChannelError`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from lendsafe.domain.reminders.policy import CHANNELS


class ChannelError(ValueError):
    """Bad input or configuration for a channel adapter (not a delivery failure)."""


class SendOutcome(enum.StrEnum):
    """What a provider told us about one send attempt."""

    ACCEPTED = "accepted"
    DELIVERED = "delivered"
    FAILED = "failed"
    TIMEOUT_UNKNOWN = "timeout_unknown"

    @property
    def may_have_been_sent(self) -> bool:
        """True unless the message was certainly not sent."""
        return self is not SendOutcome.FAILED


@dataclass(frozen=True)
class OutboundMessage:
    """One rendered reminder for one channel, identified by its dedup key."""

    dedup_key: str
    loan_id: str
    channel: str
    step: str
    recipient: str
    subject: str
    body: str
    language: str

    def __post_init__(self) -> None:
        if self.channel not in CHANNELS:
            raise ChannelError(f"unknown channel {self.channel!r}; known: {CHANNELS}")
        for name in ("dedup_key", "loan_id", "step", "recipient", "body"):
            if not getattr(self, name):
                raise ChannelError(f"OutboundMessage.{name} must not be empty")


@dataclass(frozen=True)
class SendResult:
    """Outcome of one send, with the provider's id for the message if any."""

    outcome: SendOutcome
    provider_message_id: str | None = None
    error: str | None = None


@runtime_checkable
class ChannelAdapter(Protocol):
    """A way to send reminders: implemented by every channel adapter."""

    def send(self, message: OutboundMessage) -> SendResult:
        """Send ``message``; never raises for delivery problems (see module docstring)."""
        ...

    def was_sent(self, dedup_key: str) -> bool | None:
        """Whether a message with ``dedup_key`` was sent; ``None`` if the provider can't tell."""
        ...
