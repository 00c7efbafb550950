"""Pure dispatch decisions for one reminder step: gate, channel choice, and what comes next.

The outbox worker asks three questions, each answered here without I/O or a clock (``now``
and the random ``unit`` for jitter are arguments):

* :func:`send_gate` - may this step be sent *now*? Quiet hours and the per-loan caps are
  re-checked at send time against the contacts actually recorded; otherwise the step is
  moved to the next allowed instant, or reported **missed** when that is past its expiry.
* :func:`pick_channel` - the first usable channel at or after the current position
  (address known, not opted out unless legally required, an adapter configured).
* :func:`after_outcome` / :func:`after_receipt_deadline` / :func:`after_receipt` - the next
  state after a provider answered. The rules that keep a step from being doubled:

  - ``failed`` means certainly not sent: fail over to the next channel at once; after the
    last channel, start a new round after an exponential backoff with jitter;
  - ``timeout_unknown`` is resolved by the provider's own record (``known_sent``): ``True``
    counts as sent, ``False`` retries the *same* channel after a backoff (safe: nothing went
    out), ``None`` waits for a receipt until the channel's receipt timeout;
  - a receipt deadline that passes without a receipt escalates by policy: ``failover``
    (try the next channel; the only place a double can arise, and it is reported) or
    ``hold`` (keep the step as sent, unconfirmed).

Every terminal failure carries a reason; nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Final, Literal

from lendsafe.domain.reminders.quiet_hours import (
    Caps,
    QuietHours,
    next_allowed_time,
    start_of_next_local_day,
    within_caps,
)

Escalation = Literal["failover", "hold"]
OUTCOMES: Final = ("accepted", "delivered", "failed", "timeout_unknown")
#: Retries on the same channel after a confirmed-not-sent timeout before failing over.
SAME_CHANNEL_RETRIES: Final = 3


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with multiplicative jitter: ``base * factor**n``, capped."""

    base: timedelta = timedelta(seconds=30)
    factor: int = 2
    cap: timedelta = timedelta(hours=1)
    jitter_percent: int = 50

    def delay(self, retry: int, unit: float) -> timedelta:
        """Delay before retry number ``retry`` (0-based); ``unit`` in [0, 1) drives jitter."""
        if not 0.0 <= unit < 1.0:
            raise ValueError(f"jitter unit must be in [0, 1), got {unit}")
        raw: timedelta = min(self.base * (self.factor ** min(retry, 32)), self.cap)
        spread = self.jitter_percent / 100
        scaled: timedelta = raw * (1 - spread + 2 * spread * unit)
        return scaled


@dataclass(frozen=True)
class StepState:
    """The dispatch position of one step."""

    channels: tuple[str, ...]
    channel_index: int
    round: int
    expires_at: datetime


@dataclass(frozen=True)
class Decision:
    """The next state of a step. ``contact`` marks that the borrower may have been reached."""

    status: str
    due_at: datetime
    channel_index: int
    round: int
    reason: str | None = None
    contact: bool = False
    failover: bool = False


@dataclass(frozen=True)
class Gate:
    """Result of :func:`send_gate`: ``ok``, or move to ``at``, or ``missed``."""

    verdict: Literal["ok", "later", "missed"]
    at: datetime | None = None
    reason: str | None = None


def send_gate(
    now: datetime, tz: tzinfo, quiet: QuietHours, caps: Caps, contacts: Sequence[datetime],
    expires_at: datetime,
) -> Gate:
    """May a step be sent at ``now``? Quiet hours first, then the caps over ``contacts``."""
    if now >= expires_at:
        return Gate("missed", None, "expired before it could be sent")
    if quiet.is_quiet(now, tz):
        at, reason = next_allowed_time(now, tz, quiet), "quiet_hours"
    elif not within_caps(contacts, now, tz, caps):
        at = next_allowed_time(start_of_next_local_day(now, tz), tz, quiet)
        reason = "cap_exceeded"
    else:
        return Gate("ok")
    if at >= expires_at:
        return Gate("missed", None, f"{reason}: no allowed instant before expiry")
    return Gate("later", at, reason)


def pick_channel(
    channels: Sequence[str], start: int, addresses: Collection[str], opt_outs: Collection[str],
    legally_required: bool, available: Collection[str],
) -> int | None:
    """Index of the first usable channel at or after ``start``, or ``None``."""
    for index in range(start, len(channels)):
        channel = channels[index]
        if channel not in addresses or channel not in available:
            continue
        if not legally_required and (channel in opt_outs or "marketing" in opt_outs):
            continue
        return index
    return None


def unreachable_reason(
    channels: Sequence[str], addresses: Collection[str], opt_outs: Collection[str],
    available: Collection[str],
) -> str:
    """Why no channel of a step can be used (for the report)."""
    parts = []
    for channel in channels:
        if channel not in addresses:
            parts.append(f"{channel}: no address")
        elif channel not in available:
            parts.append(f"{channel}: no adapter configured")
        elif channel in opt_outs or "marketing" in opt_outs:
            parts.append(f"{channel}: opted out")
    return "no reachable channel (" + "; ".join(parts) + ")"


def next_channel(
    state: StepState, used: int, now: datetime, reason: str, backoff: Backoff, unit: float
) -> Decision:
    """Fail over to the channel after ``used``, or start a new round after a backoff."""
    if used + 1 < len(state.channels):
        return Decision("pending", now, used + 1, state.round, reason, failover=True)
    due = now + backoff.delay(state.round, unit)
    if due >= state.expires_at:
        return Decision("missed", now, used, state.round, f"every channel failed: {reason}")
    return Decision("pending", due, 0, state.round + 1, reason)


def after_outcome(
    state: StepState, used: int, outcome: str, known_sent: bool | None, now: datetime, *,
    receipt_timeout: timedelta, backoff: Backoff, unit: float, same_channel_tries: int,
    error: str | None = None,
) -> Decision:
    """Next state after a send on channel ``used`` answered ``outcome``."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    if outcome == "delivered":
        return Decision("delivered", now, used, state.round, None, contact=True)
    if outcome == "accepted":
        return Decision("awaiting_receipt", now + receipt_timeout, used, state.round, None,
                        contact=True)
    if outcome == "failed":
        return next_channel(state, used, now, f"{state.channels[used]} failed: {error}",
                            backoff, unit)
    if known_sent is True:
        return Decision("sent", now, used, state.round,
                        "timed out; the provider's record shows it was sent", contact=True)
    if known_sent is None:
        return Decision("awaiting_receipt", now + receipt_timeout, used, state.round,
                        "timed out; provider cannot tell: waiting for a receipt", contact=True)
    due = now + backoff.delay(same_channel_tries, unit)
    if same_channel_tries < SAME_CHANNEL_RETRIES and due < state.expires_at:
        return Decision("pending", due, used, state.round, "timed out before the provider took it")
    return next_channel(state, used, now, f"{state.channels[used]} kept timing out", backoff,
                        unit)


def after_receipt_deadline(
    state: StepState, now: datetime, escalation: Escalation
) -> Decision:
    """No receipt arrived in time for the channel at ``state.channel_index``."""
    used = state.channel_index
    reason = f"no receipt from {state.channels[used]} in time"
    if escalation == "failover" and used + 1 < len(state.channels) and now < state.expires_at:
        return Decision("pending", now, used + 1, state.round, reason, failover=True)
    return Decision("sent", now, used, state.round, reason + "; kept as sent (unconfirmed)")


def after_receipt(
    state: StepState, delivered: bool, now: datetime, backoff: Backoff, unit: float
) -> Decision:
    """A receipt arrived for the channel at ``state.channel_index``."""
    if delivered:
        return Decision("delivered", now, state.channel_index, state.round, None)
    reason = f"{state.channels[state.channel_index]} receipt says not delivered"
    return next_channel(state, state.channel_index, now, reason, backoff, unit)

