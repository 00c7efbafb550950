"""The reminder outbox worker: claim due steps with a lease, gate, send, record every attempt.

One worker loop (:meth:`Worker.run`) repeats: sweep expired steps to ``missed``; claim a
batch (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a single claimant on SQLite) and commit
the lease - the lease itself is the *intent to send* (``inflight``); send each step through
its channel adapter; record outcomes, attempts and deliveries in one transaction fenced by
the lease owner. A worker killed between send and record leaves ``inflight`` steps whose
lease expires; the next claimant asks the provider (``was_sent``) before anything else, so
a step is never sent twice on a channel and never lost.

Decisions (failover, backoff, receipt deadlines, quiet hours and caps) are the pure
functions of :mod:`lendsafe.domain.reminders.dispatch`; the clock and the jitter source are
injected.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from lendsafe.adapters.channels.base import (
    ChannelAdapter,
    ChannelError,
    OutboundMessage,
    SendOutcome,
    SendResult,
)
from lendsafe.adapters.db import reminder_dispatch_store as dstore
from lendsafe.adapters.db import reminder_store as store
from lendsafe.config import ReminderSettings
from lendsafe.domain.reminders import dispatch as d
from lendsafe.domain.reminders.messages import Money
from lendsafe.domain.reminders.policy import ReminderPolicy, ReminderStep, default_policy
from lendsafe.domain.reminders.quiet_hours import QuietHours, effective_quiet_hours
from lendsafe.domain.reminders.templates import TemplateCatalog, TemplateError, render
from lendsafe.services.reminders import AddressSealer, PlainSealer, utc_now

log = logging.getLogger(__name__)
_SWEEP_EVERY = timedelta(seconds=5)  # expired steps are rare: no need to look every batch
Clock = Callable[[], datetime]
_ZoneKey = tuple[str, str | None, str | None]  # policy, borrower's zone, own quiet hours
_HOW_TO_PAY = {"zh": "App内还款或银行转账", "en": "in the app or by bank transfer"}


@dataclass
class WorkerStats:
    """What one worker did."""

    batches: int = 0
    claimed: int = 0
    sends: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    db_errors: int = 0


@dataclass
class _Batch:
    """Writes collected while processing one claimed batch."""

    now: datetime
    updates: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    outgoing: list[tuple[dict[str, Any], d.StepState, int, OutboundMessage]] = field(
        default_factory=list)
    #: send gates of steps without earlier contacts, by (zone, expiry): pure, so shared
    gates: dict[tuple[_ZoneKey, datetime], d.Gate] = field(default_factory=dict)


class Worker:
    """One dispatch loop over one database and a set of channel adapters."""

    def __init__(self, engine: Engine, channels: Mapping[str, ChannelAdapter],
                 settings: ReminderSettings | None = None, *,
                 policies: Mapping[str, ReminderPolicy] | None = None, clock: Clock = utc_now,
                 rng: random.Random | None = None, worker_id: str | None = None,
                 sealer: AddressSealer | None = None, catalog: TemplateCatalog | None = None,
                 after_claim: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self.channels = dict(channels)
        self.settings = settings or ReminderSettings()
        policy = default_policy()
        self.policies = dict(policies or {policy.policy_id: policy})
        self.clock = clock
        self.rng = rng or random.Random()
        self.worker_id = worker_id or f"w-{uuid.uuid4().hex[:10]}"
        self.sealer = sealer or PlainSealer()
        self.catalog = catalog
        self.after_claim = after_claim
        self.stats = WorkerStats()
        self._last_idle_check: datetime | None = None
        self._last_sweep: datetime | None = None
        self._zones: dict[_ZoneKey, tuple[tzinfo, QuietHours]] = {}
        self._steps: dict[tuple[str, str], ReminderStep] = {}
        self.backoff = d.Backoff(base=timedelta(seconds=self.settings.backoff_base_seconds),
                                 cap=timedelta(seconds=self.settings.backoff_cap_seconds))
        self.escalation: d.Escalation = (
            "hold" if self.settings.escalation == "hold" else "failover")

    # -- loop --------------------------------------------------------------------------
    def run(self, *, until_idle: bool = False, max_batches: int | None = None,
            poll_seconds: float = 0.5, sleep: Callable[[float], None] = time.sleep) -> WorkerStats:
        """Work until idle (``until_idle``), ``max_batches``, or forever."""
        while max_batches is None or self.stats.batches < max_batches:
            try:
                if self.run_once():
                    continue
                if until_idle and self._idle():
                    break
            except (OperationalError, DBAPIError) as error:  # connection lost, deadlock, ...
                self.stats.db_errors += 1
                log.warning("worker %s: database error, reconnecting: %s", self.worker_id, error)
                self.engine.dispose()
                sleep(min(2.0, 0.05 * 2 ** min(self.stats.db_errors, 6)))
                continue
            sleep(poll_seconds)
        return self.stats

    def _idle(self) -> bool:
        """Nothing falls due within the idle wait (or the clock is frozen)."""
        with self.engine.begin() as connection:
            upcoming = dstore.next_due(connection)
        now = self.clock()
        if upcoming is None or upcoming > now + timedelta(
                seconds=self.settings.idle_wait_seconds):
            return True
        frozen, self._last_idle_check = now == self._last_idle_check, now
        return frozen

    def run_once(self) -> int:
        """Sweep, claim one batch, send it and record it; returns how many were claimed."""
        now = self.clock()
        owner = f"{self.worker_id}:{uuid.uuid4().hex[:8]}"
        with self.engine.connect() as connection:  # one checkout for both transactions
            with connection.begin():
                if self._last_sweep is None or now - self._last_sweep >= _SWEEP_EVERY:
                    dstore.sweep(connection, now)
                    self._last_sweep = now
                rows, context = dstore.claim_batch(
                    connection, owner, now, timedelta(seconds=self.settings.lease_seconds),
                    self.settings.batch_size)
            if not rows:
                return 0
            if self.after_claim is not None:  # fault injection in tests
                self.after_claim()
            batch = _Batch(now)
            deadline = now + timedelta(seconds=self.settings.lease_seconds * 2 / 3)
            for row in rows:
                if self.clock() >= deadline:
                    break  # the lease is running out: leave the rest to a later claimant
                self._handle(row, context, batch)
            self._flush(batch, deadline)
            with connection.begin():
                dstore.record(connection, owner, batch.updates, batch.attempts,
                              batch.deliveries)
        self.stats.batches += 1
        self.stats.claimed += len(rows)
        for update in batch.updates:
            self.stats.by_status[update["status"]] = self.stats.by_status.get(
                update["status"], 0) + 1
        return len(rows)

    # -- one step ----------------------------------------------------------------------
    def _handle(self, row: dict[str, Any], context: dict[str, Any], batch: _Batch) -> None:
        state = d.StepState(tuple(row["channels"].split(",")), row["channel_index"],
                            row["round"], row["expires_at"])
        if row["status"] == "awaiting_receipt":
            self._apply(row, d.after_receipt_deadline(state, batch.now, self.escalation), batch)
            return
        if row["was_inflight"] and self._recover(row, state, batch):
            # it may have reached the borrower: it counts against the caps of later steps
            context["history"].setdefault(row["loan_id"], []).append(batch.now)
            return
        balance = context["balances"].get((row["loan_id"], row["installment_seq"]))
        owed = balance[1] if balance and balance[1] > 0 and balance[0] == row["due_date"] \
            else None  # what is still owed on the step's instalment as planned
        if self._step(row).kind == "notice":  # an event notice is told whatever was paid
            self._gate_and_send(row, state, context,
                                row["amount_due_minor"] if owed is None else owed, batch)
            return
        if owed is None:
            reason = "instalment settled" if balance and balance[1] <= 0 else "schedule changed"
            self._finish(row, batch, "cancelled", reason)
            return
        self._gate_and_send(row, state, context, owed, batch)

    def _gate_and_send(self, row: dict[str, Any], state: d.StepState, context: dict[str, Any],
                       outstanding: int, batch: _Batch) -> None:
        policy = self.policies[row["policy_id"]]
        contact = context["contacts"].get(row["borrower_id"])
        zone_key, tz, quiet = self._zone_and_quiet(policy, contact)
        history = context["history"].setdefault(row["loan_id"], [])
        if history:
            gate = d.send_gate(batch.now, tz, quiet, policy.caps, history, state.expires_at)
        else:  # the same answer for every step of the batch with this zone and expiry
            key = (zone_key, state.expires_at)
            gate = batch.gates.get(key) or batch.gates.setdefault(key, d.send_gate(
                batch.now, tz, quiet, policy.caps, (), state.expires_at))
        if gate.verdict == "missed":
            self._finish(row, batch, "missed", gate.reason)
            return
        if gate.verdict == "later":
            assert gate.at is not None
            self._apply(row, d.Decision("pending", gate.at, state.channel_index, state.round,
                                        gate.reason), batch)
            return
        addresses = context["addresses"].get(row["borrower_id"], {})
        opt_outs = set((contact.opt_outs if contact else "").split(","))
        index = d.pick_channel(state.channels, state.channel_index, addresses, opt_outs,
                               row["legally_required"], self.channels)
        if index is None:
            self._no_channel(row, state, addresses, opt_outs, batch)
            return
        if self._prepare(row, state, index, addresses[state.channels[index]], outstanding,
                         batch):
            history.append(batch.now)  # counted now: caps hold for the rest of the batch

    def _zone_and_quiet(self, policy: ReminderPolicy, contact: Any
                        ) -> tuple[_ZoneKey, tzinfo, QuietHours]:
        key = (policy.policy_id, contact.time_zone if contact else None,
               contact.quiet_hours if contact else None)
        found = self._zones.get(key)
        if found is None:
            tz = ZoneInfo(key[1] or self.settings.default_time_zone)
            own = store.parse_quiet_hours(key[2])
            found = (tz, effective_quiet_hours(own, policy.default_quiet_hours,
                                               policy.legal_quiet_hours))
            self._zones[key] = found
        return key, found[0], found[1]

    def _no_channel(self, row: dict[str, Any], state: d.StepState, addresses: Any,
                    opt_outs: set[str], batch: _Batch) -> None:
        first = d.pick_channel(state.channels, 0, addresses, opt_outs, row["legally_required"],
                               self.channels)
        if first is None:
            reason = d.unreachable_reason(state.channels, addresses, opt_outs, self.channels)
            status = "unreachable" if row["legally_required"] else "skipped"
            self._finish(row, batch, status, reason)
            return
        reason = row["reason"] or "no usable channel left in this round"
        decision = d.next_channel(state, len(state.channels) - 1, batch.now, reason,
                                  self.backoff, self.rng.random())
        self._apply(row, decision, batch)

    def _prepare(self, row: dict[str, Any], state: d.StepState, index: int,
                 sealed: tuple[str, str], outstanding: int, batch: _Batch) -> bool:
        """Render the message for channel ``index`` and queue it; False if it cannot be."""
        channel = state.channels[index]
        key = f"{row['step_key']}:{channel}"
        try:
            message = self._message(row, channel, key, self.sealer.open(*sealed), outstanding)
        except (TemplateError, ChannelError, ValueError) as error:
            self._finish(row, batch, "blocked", f"cannot build the message: {error}")
            return False
        batch.outgoing.append((row, state, index, message))
        return True

    def _flush(self, batch: _Batch, deadline: datetime) -> None:
        """Send the queued messages (one call per adapter that takes batches) and decide."""
        groups: dict[int, list[tuple[dict[str, Any], d.StepState, int, OutboundMessage]]] = {}
        for item in batch.outgoing:
            groups.setdefault(id(self.channels[item[3].channel]), []).append(item)
        for items in groups.values():
            adapter = self.channels[items[0][3].channel]
            if hasattr(adapter, "send_batch"):
                results = self._call_batch(adapter, [item[3] for item in items])
                for item, result in zip(items, results, strict=True):
                    self._decide(*item, result, batch)
                continue
            for item in items:
                if self.clock() >= deadline:
                    return  # unsent and unrecorded: the next claimant asks was_sent first
                self._decide(*item, self._call(item[3].channel, item[3]), batch)

    def _decide(self, row: dict[str, Any], state: d.StepState, index: int,
                message: OutboundMessage, result: SendResult, batch: _Batch) -> None:
        channel, key = message.channel, message.dedup_key
        known = self._was_sent(channel, key) if result.outcome is SendOutcome.TIMEOUT_UNKNOWN \
            else None
        decision = d.after_outcome(
            state, index, result.outcome.value, known, batch.now,
            receipt_timeout=self._step(row).receipt_timeout(channel), backoff=self.backoff,
            unit=self.rng.random(), same_channel_tries=row["tries"], error=result.error)
        self.stats.sends += 1
        outcome = _delivery_outcome(result.outcome, known)
        self._log_attempt(row, channel, key, outcome, result.provider_message_id, result.error,
                          batch)
        self._apply(row, decision, batch, tried=1, channel=channel)

    def _step(self, row: dict[str, Any]) -> ReminderStep:
        key = (row["policy_id"], row["step_code"])
        step = self._steps.get(key)
        if step is None:
            policy = self.policies[row["policy_id"]]
            step = policy.step(row["step_code"])
            self._steps[key] = step
        return step

    def _message(self, row: dict[str, Any], channel: str, key: str, recipient: str,
                 outstanding: int) -> OutboundMessage:
        language = row["language"]
        days = (_local_send_date(row) - row["due_date"]).days
        context = {
            "amount": Money(outstanding, row["currency"]), "due_date": row["due_date"],
            "loan_ref": f"L{row['loan_id']}",
            "how_to_pay": self.settings.how_to_pay or _HOW_TO_PAY.get(language, ""),
            "days_left": max(0, -days), "days_overdue": max(0, days),
        }
        rendered = render(row["template_id"], language, context, catalog=self.catalog)
        return OutboundMessage(key, str(row["loan_id"]), channel, row["step_code"], recipient,
                               rendered.subject, rendered.body, language)

    def _call_batch(self, adapter: Any, messages: list[OutboundMessage]) -> list[SendResult]:
        try:
            results: list[SendResult] = adapter.send_batch(messages)
            return results
        except ChannelError:  # one bad message: fall back to one call each
            return [self._call(m.channel, m) for m in messages]
        except Exception as error:  # an adapter bug: we cannot know what went out
            unknown = SendResult(SendOutcome.TIMEOUT_UNKNOWN, None, f"adapter raised {error!r}")
            return [unknown] * len(messages)

    def _call(self, channel: str, message: OutboundMessage) -> SendResult:
        try:
            return self.channels[channel].send(message)
        except ChannelError as error:
            return SendResult(SendOutcome.FAILED, None, f"channel refused: {error}")
        except Exception as error:  # an adapter bug: we cannot know whether it went out
            return SendResult(SendOutcome.TIMEOUT_UNKNOWN, None, f"adapter raised {error!r}")

    def _was_sent(self, channel: str, key: str) -> bool | None:
        try:
            return self.channels[channel].was_sent(key)
        except Exception as error:  # cannot tell
            log.warning("was_sent(%s) failed: %r", key, error)
            return None

    # -- crash recovery ------------------------------------------------------------
    def _recover(self, row: dict[str, Any], state: d.StepState, batch: _Batch) -> bool:
        """A previous claimant may have sent this step: ask the providers first."""
        unknown = False
        for index, channel in enumerate(state.channels):
            if channel not in self.channels:
                continue
            key = f"{row['step_key']}:{channel}"
            known = self._was_sent(channel, key)
            if known:
                self._log_attempt(row, channel, key, "confirmed", None,
                                  "recovered: the provider's record shows it was sent", batch,
                                  recovery=True)
                self._apply(row, d.Decision("sent", batch.now, index, state.round,
                                            "recovered after an interrupted send; provider "
                                            "confirms it was sent", contact=True),
                            batch, channel=channel)
                return True
            unknown = unknown or known is None
        if not unknown:
            channel = state.channels[state.channel_index]
            self._log_attempt(row, channel, f"{row['step_key']}:{channel}", "not_sent", None,
                              "recovered: no provider has it; sending again", batch,
                              recovery=True, delivery=False)
            return False
        channel = state.channels[state.channel_index]
        wait = self._step(row).receipt_timeout(channel)
        self._apply(row, d.Decision("awaiting_receipt", batch.now + wait, state.channel_index,
                                    state.round, "interrupted send; provider cannot tell: "
                                    "waiting for a receipt", contact=True), batch)
        return True

    # -- recording -------------------------------------------------------------------
    def _finish(self, row: dict[str, Any], batch: _Batch, status: str,
                reason: str | None) -> None:
        self._apply(row, d.Decision(status, batch.now, row["channel_index"], row["round"],
                                    reason), batch)

    def _apply(self, row: dict[str, Any], decision: d.Decision, batch: _Batch, *,
               tried: int = 0, channel: str | None = None) -> None:
        sent_channel = None
        if decision.contact:
            sent_channel = channel or row["channels"].split(",")[decision.channel_index]
        batch.updates.append({
            "id": row["id"], "status": decision.status, "reason": decision.reason,
            "due_at": decision.due_at, "channel_index": decision.channel_index,
            "round": decision.round, "tries": tried, "failovers": int(decision.failover),
            "sent_channel": sent_channel,
            "sent_at": batch.now if decision.contact else None,
            "delivered_at": batch.now if decision.status == "delivered" else None,
            "now": batch.now,
        })

    def _log_attempt(self, row: dict[str, Any], channel: str, key: str, outcome: str,
                     provider_id: str | None, error: str | None, batch: _Batch, *,
                     recovery: bool = False, delivery: bool = True) -> None:
        batch.attempts.append({
            "reminder_id": row["id"], "dedup_key": key, "channel": channel, "outcome": outcome,
            "provider_message_id": provider_id, "error": error, "at": batch.now,
            "worker": self.worker_id, "recovery": recovery})
        if not delivery:
            return
        batch.deliveries.append({
            "dedup_key": key, "reminder_id": row["id"], "channel": channel, "outcome": outcome,
            "provider_message_id": provider_id, "error": error, "tries": 1,
            "first_at": batch.now, "last_at": batch.now})


def _delivery_outcome(outcome: SendOutcome, known: bool | None) -> str:
    if outcome is not SendOutcome.TIMEOUT_UNKNOWN:
        return outcome.value
    return {True: "confirmed", False: "not_sent", None: "unknown"}[known]


def _local_send_date(row: dict[str, Any]) -> date:
    code = row["step_code"]  # "T-3", "T0", "T+1"; an event notice ("RLF-A") counts as T0
    offset = int(code[1:] or 0) if code.startswith("T") else 0
    return row["due_date"] + timedelta(days=offset)  # type: ignore[no-any-return]


def fixed_clock(start: datetime, *, advance: bool = True, origin: float | None = None) -> Clock:
    """A clock that reads ``start`` at real epoch second ``origin`` (default: now) and, if
    ``advance``, runs on in real time. Processes given the same origin agree on the time."""
    anchor = time.time() if origin is None else origin
    start = start.astimezone(UTC)

    def clock() -> datetime:
        if not advance:
            return start
        return start + timedelta(seconds=time.time() - anchor)

    return clock
