"""Reminder policies (data per product and jurisdiction) and the pure reminder planner.

A policy is loaded from a TOML-parsed mapping by :func:`load_policy`, which
reports *every* problem it finds as a :class:`Problem` value with a stable
``code`` (see :data:`PROBLEM_CODES`) inside one :class:`PolicyError`.

:func:`plan_reminders` turns installments x policy steps into
:class:`PlannedReminder` values: planned send time in UTC (computed on the
borrower's local wall clock, moved out of quiet hours, spread to respect the
per-loan caps), expiry, and the ordered channels with one **dedup key** each::

    rem:{loan_id}:{installment_seq}:{step_code}:{channel}

Every component is percent-encoded (``urllib.parse.quote(safe="+")``) so a
``:`` inside a loan id cannot make two keys collide; e.g.
``rem:L-42:3:T-1:sms``. The key deliberately excludes the policy version, the
planned time and the message text: re-planning after a policy change or a
reschedule yields the same keys, so an outbox keyed on them never sends a step
twice. Pure: "now" is the ``not_before`` argument; no clock, no I/O except
:func:`default_policy`, which reads the policy shipped inside the package.
"""

from __future__ import annotations

import heapq
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from importlib import resources
from typing import Any, Final, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lendsafe.domain.reminders.messages import SUPPORTED_LANGUAGES, Money
from lendsafe.domain.reminders.quiet_hours import (
    Caps,
    QuietHours,
    QuietWindow,
    effective_quiet_hours,
    next_allowed_time,
    resolve_local,
    start_of_next_local_day,
    within_caps,
)
from lendsafe.domain.reminders.templates import TemplateCatalog, default_catalog

CHANNELS: Final = ("app_push", "sms", "voice", "email")
StepKind = Literal["reminder", "overdue_notice", "notice"]
STEP_KINDS: Final = ("reminder", "overdue_notice")
#: Event notices (``[[notices]]``): sent once, as soon as quiet hours allow, for an event
#: that is not a due date - e.g. a relief event applied to or offered on a loan.
NOTICE_CODE_RE: Final = re.compile(r"^[A-Z]{2}[A-Z0-9]{0,2}-[A-Z0-9]{1,3}$")  # not "T-3"
#: Opt-out token that silences every message that is not legally required.
OPT_OUT_ALL_OPTIONAL: Final = "marketing"
MAX_OFFSET_DAYS: Final = 90
MAX_EXPIRY_HOURS: Final = 24 * 14
PROBLEM_CODES: Final = frozenset({
    "missing_field", "unknown_key", "bad_type", "bad_language", "unknown_channel",
    "duplicate_channel", "no_channels", "bad_offset", "bad_step_code", "duplicate_step",
    "bad_kind", "kind_offset_mismatch", "malformed_time", "bad_quiet_hours", "bad_caps",
    "bad_expiry", "bad_timeout", "missing_timeout", "unknown_template", "template_missing",
    "send_time_in_quiet_hours", "legal_notice_missing",
})

_TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_CODE_RE = re.compile(r"^T(0|[+-][1-9]\d*)$")
_TOP_KEYS = frozenset({
    "policy_id", "version", "jurisdiction", "product", "default_language", "languages",
    "quiet_hours", "caps", "receipt_timeout_minutes", "steps", "notices",
})
_NOTICE_KEYS = frozenset({
    "code", "legally_required", "channels", "template", "expiry_hours",
    "receipt_timeout_minutes",
})
_STEP_KEYS = frozenset({
    "code", "offset_days", "send_at", "kind", "legally_required", "channels", "template",
    "expiry_hours", "receipt_timeout_minutes",
})


# --------------------------------------------------------------------------- policy model


@dataclass(frozen=True)
class Problem:
    """One validation problem: a stable ``code``, where (``path``) and a human message."""

    code: str
    path: str
    message: str


class PolicyError(ValueError):
    """A policy mapping is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        lines = "; ".join(f"{p.path}: {p.code}: {p.message}" for p in self.problems)
        super().__init__(f"invalid reminder policy ({len(self.problems)} problems): {lines}")

    @property
    def codes(self) -> frozenset[str]:
        """The set of problem codes, handy for assertions and metrics."""
        return frozenset(p.code for p in self.problems)


@dataclass(frozen=True)
class ReminderStep:
    """One step of the cadence, relative to an installment's due date."""

    code: str
    offset_days: int
    send_at: time
    kind: StepKind
    legally_required: bool
    channels: tuple[str, ...]
    template_id: str
    expiry: timedelta
    receipt_timeouts: tuple[tuple[str, timedelta], ...]

    def receipt_timeout(self, channel: str) -> timedelta:
        """How long to wait for a delivery receipt on ``channel`` before failing over."""
        return dict(self.receipt_timeouts)[channel]


@dataclass(frozen=True)
class ReminderPolicy:
    """Cadence, quiet hours and caps for one product in one jurisdiction."""

    policy_id: str
    version: int
    jurisdiction: str
    product: str
    default_language: str
    languages: tuple[str, ...]
    default_quiet_hours: QuietHours
    legal_quiet_hours: QuietHours
    caps: Caps
    steps: tuple[ReminderStep, ...]
    notices: tuple[ReminderStep, ...] = ()

    def step(self, code: str) -> ReminderStep:
        """The cadence step or event notice called ``code`` (KeyError if none)."""
        for step in (*self.steps, *self.notices):
            if step.code == code:
                return step
        raise KeyError(f"policy {self.policy_id!r} has no step or notice {code!r}")

    def quiet_hours_for(self, borrower: Borrower) -> QuietHours:
        """Borrower's own quiet hours (or the default) always united with the legal bound."""
        return effective_quiet_hours(borrower.quiet_hours, self.default_quiet_hours,
                                     self.legal_quiet_hours)

    def language_for(self, borrower: Borrower) -> str:
        """Borrower's language if the policy has templates in it, else the default."""
        if borrower.language in self.languages:
            return borrower.language
        return self.default_language


# --------------------------------------------------------------------------- loading


class _Collector:
    """Accumulates problems while reading a mapping."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, code: str, path: str, message: str) -> None:
        self.problems.append(Problem(code, path, message))

    def unknown_keys(self, raw: Mapping[str, object], allowed: frozenset[str], path: str) -> None:
        for key in sorted(set(raw) - allowed):
            self.add("unknown_key", f"{path}.{key}" if path else key, "unknown key")

    def text(self, raw: Mapping[str, object], key: str, path: str) -> str | None:
        value = raw.get(key)
        if value is None:
            self.add("missing_field", path, f"{key!r} is required")
        elif not isinstance(value, str) or not value:
            self.add("bad_type", path, f"{key!r} must be a non-empty string")
        else:
            return value
        return None

    def integer(self, value: object, path: str, code: str, lo: int, hi: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(code, path, f"expected an integer, got {value!r}")
        elif not lo <= value <= hi:
            self.add(code, path, f"{value} is outside {lo}..{hi}")
        else:
            return value
        return None

    def clock(self, value: object, path: str) -> time | None:
        match = _TIME_RE.match(value) if isinstance(value, str) else None
        if match is None:
            self.add("malformed_time", path, f"expected 'HH:MM' (00:00-23:59), got {value!r}")
            return None
        return time(int(match.group(1)), int(match.group(2)))


def _read_windows(raw: object, path: str, c: _Collector) -> QuietHours | None:
    if not isinstance(raw, list):
        c.add("bad_quiet_hours", path, "expected a list of 'HH:MM-HH:MM' strings")
        return None
    windows: list[QuietWindow] = []
    for i, item in enumerate(raw):
        parts = item.split("-") if isinstance(item, str) else []
        if len(parts) != 2:
            c.add("malformed_time", f"{path}[{i}]", f"expected 'HH:MM-HH:MM', got {item!r}")
            continue
        start, end = c.clock(parts[0], f"{path}[{i}]"), c.clock(parts[1], f"{path}[{i}]")
        if start is not None and end is not None:
            if start == end:
                c.add("bad_quiet_hours", f"{path}[{i}]", "start equals end")
                continue
            windows.append(QuietWindow(start, end))
    try:
        return QuietHours(tuple(windows))
    except ValueError as exc:
        c.add("bad_quiet_hours", path, str(exc))
        return None


def _read_quiet_hours(raw: object, c: _Collector) -> tuple[QuietHours, QuietHours] | None:
    if not isinstance(raw, Mapping):
        c.add("bad_quiet_hours", "quiet_hours", "expected a table with 'default' and 'legal'")
        return None
    c.unknown_keys(raw, frozenset({"default", "legal"}), "quiet_hours")
    default = _read_windows(raw.get("default", []), "quiet_hours.default", c)
    legal = _read_windows(raw.get("legal", []), "quiet_hours.legal", c)
    if default is None or legal is None:
        return None
    try:
        default.union(legal)
    except ValueError as exc:
        c.add("bad_quiet_hours", "quiet_hours", str(exc))
        return None
    return default, legal


def _read_caps(raw: object, c: _Collector) -> Caps | None:
    if not isinstance(raw, Mapping):
        c.add("bad_caps", "caps", "expected a table with per_day and per_week")
        return None
    c.unknown_keys(raw, frozenset({"per_day", "per_week"}), "caps")
    per_day = c.integer(raw.get("per_day"), "caps.per_day", "bad_caps", 1, 100)
    per_week = c.integer(raw.get("per_week"), "caps.per_week", "bad_caps", 1, 700)
    if per_day is None or per_week is None:
        return None
    if per_day > per_week:
        c.add("bad_caps", "caps", "per_day exceeds per_week")
        return None
    return Caps(per_day, per_week)


def _read_timeouts(raw: object, path: str, c: _Collector) -> dict[str, timedelta]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        c.add("bad_timeout", path, "expected a table of channel = minutes")
        return {}
    out: dict[str, timedelta] = {}
    for channel, minutes in raw.items():
        if channel not in CHANNELS:
            c.add("unknown_channel", f"{path}.{channel}", f"unknown channel; use {CHANNELS}")
            continue
        value = c.integer(minutes, f"{path}.{channel}", "bad_timeout", 1, 24 * 60)
        if value is not None:
            out[channel] = timedelta(minutes=value)
    return out


def _read_channels(raw: object, path: str, c: _Collector) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        c.add("no_channels", path, "expected a non-empty list of channels")
        return ()
    seen: list[str] = []
    for i, channel in enumerate(raw):
        if channel not in CHANNELS:
            c.add("unknown_channel", f"{path}[{i}]", f"unknown channel {channel!r}; use {CHANNELS}")
        elif channel in seen:
            c.add("duplicate_channel", f"{path}[{i}]", f"channel {channel!r} listed twice")
        else:
            seen.append(channel)
    return tuple(seen)


def _read_offset_and_kind(raw: Mapping[str, object], path: str, c: _Collector) -> tuple[
    int | None, StepKind | None
]:
    offset = c.integer(
        raw.get("offset_days"), f"{path}.offset_days", "bad_offset", -MAX_OFFSET_DAYS,
        MAX_OFFSET_DAYS,
    )
    kind = raw.get("kind")
    if kind not in STEP_KINDS:
        c.add("bad_kind", f"{path}.kind", f"expected one of {STEP_KINDS}, got {kind!r}")
        return offset, None
    checked: StepKind = "reminder" if kind == "reminder" else "overdue_notice"
    if offset is not None and (offset > 0) != (checked == "overdue_notice"):
        c.add("kind_offset_mismatch", path, "offsets <= 0 are reminders, > 0 overdue notices")
    return offset, checked


def _read_code(raw: Mapping[str, object], path: str, offset: int | None, c: _Collector) -> str:
    code = c.text(raw, "code", f"{path}.code") or ""
    if code and not _CODE_RE.match(code):
        c.add("bad_step_code", f"{path}.code", f"expected 'T0', 'T-3' or 'T+1', got {code!r}")
    elif code and offset is not None and code != _code_for(offset):
        c.add("bad_step_code", f"{path}.code", f"{code!r} does not match offset_days={offset}")
    return code


def _code_for(offset: int) -> str:
    return "T0" if offset == 0 else f"T{offset:+d}"


@dataclass
class _Context:
    collector: _Collector
    catalog: TemplateCatalog
    languages: tuple[str, ...]
    default_timeouts: dict[str, timedelta]


def _read_template(raw: Mapping[str, object], path: str, ctx: _Context) -> str:
    template = ctx.collector.text(raw, "template", f"{path}.template") or ""
    if template and template not in ctx.catalog.template_ids():
        ctx.collector.add("unknown_template", f"{path}.template", f"no template {template!r}")
    elif template:
        for language in ctx.languages:
            if not ctx.catalog.has(template, language):
                msg = f"template {template!r} has no {language!r} text"
                ctx.collector.add("template_missing", f"{path}.template", msg)
    return template


def _table(raw: object, path: str, what: str, keys: frozenset[str], c: _Collector
           ) -> Mapping[str, object] | None:
    """``raw`` as a table of known keys (a problem for each unknown one), or None."""
    if not isinstance(raw, Mapping):
        c.add("bad_type", path, f"{what} must be a table")
        return None
    c.unknown_keys(raw, keys, path)
    return raw


def _read_step(item: object, path: str, ctx: _Context) -> ReminderStep | None:
    c = ctx.collector
    raw = _table(item, path, "a step", _STEP_KEYS, c)
    if raw is None:
        return None
    offset, kind = _read_offset_and_kind(raw, path, c)
    code = _read_code(raw, path, offset, c)
    send_at = c.clock(raw.get("send_at"), f"{path}.send_at")
    common = _read_delivery(raw, path, ctx)
    if None in (offset, kind, send_at) or common is None or not code:
        return None
    assert offset is not None and kind is not None and send_at is not None
    return ReminderStep(code=code, offset_days=offset, send_at=send_at, kind=kind, **common)


def _read_delivery(raw: Mapping[str, object], path: str, ctx: _Context
                   ) -> dict[str, Any] | None:
    """What steps and notices share: legal flag, channels, template, expiry, timeouts."""
    c = ctx.collector
    required = raw.get("legally_required", False)
    if not isinstance(required, bool):
        c.add("bad_type", f"{path}.legally_required", "expected true or false")
    channels = _read_channels(raw.get("channels"), f"{path}.channels", c)
    template = _read_template(raw, path, ctx)
    expiry = c.integer(raw.get("expiry_hours"), f"{path}.expiry_hours", "bad_expiry", 1,
                       MAX_EXPIRY_HOURS)
    timeouts = ctx.default_timeouts | _read_timeouts(
        raw.get("receipt_timeout_minutes"), f"{path}.receipt_timeout_minutes", c)
    for channel in channels:
        if channel not in timeouts:
            c.add("missing_timeout", f"{path}.channels", f"no receipt timeout for {channel!r}")
    if not expiry or not isinstance(required, bool):
        return None
    return {"legally_required": required, "channels": channels, "template_id": template,
            "expiry": timedelta(hours=expiry),
            "receipt_timeouts": tuple((ch, timeouts[ch]) for ch in channels if ch in timeouts)}


def _read_notice(item: object, path: str, ctx: _Context) -> ReminderStep | None:
    c = ctx.collector
    raw = _table(item, path, "a notice", _NOTICE_KEYS, c)
    if raw is None:
        return None
    code = c.text(raw, "code", f"{path}.code") or ""
    if code and not NOTICE_CODE_RE.match(code):
        c.add("bad_notice_code", f"{path}.code", f"expected e.g. 'RLF-A' (up to 8), got {code!r}")
    common = _read_delivery(raw, path, ctx)
    if not code or not NOTICE_CODE_RE.match(code) or common is None:
        return None
    return ReminderStep(code=code, offset_days=0, send_at=time(0, 0), kind="notice", **common)


def _read_notices(raw: object, ctx: _Context) -> list[ReminderStep]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        ctx.collector.add("bad_type", "notices", "expected a list of [[notices]] tables")
        return []
    notices: list[ReminderStep] = []
    for i, item in enumerate(raw):
        notice = _read_notice(item, f"notices[{i}]", ctx)
        if notice is not None and any(n.code == notice.code for n in notices):
            ctx.collector.add("duplicate_step", f"notices[{i}].code",
                              f"notice {notice.code!r} defined twice")
        elif notice is not None:
            notices.append(notice)
    return notices


def _read_languages(raw: Mapping[str, object], c: _Collector) -> tuple[str, tuple[str, ...]]:
    default = raw.get("default_language")
    languages = raw.get("languages", [default])
    if not isinstance(languages, list) or not languages:
        c.add("bad_language", "languages", "expected a non-empty list of languages")
        languages = []
    for lang in languages:
        if lang not in SUPPORTED_LANGUAGES:
            c.add("bad_language", "languages", f"{lang!r} not in {SUPPORTED_LANGUAGES}")
    if default not in languages or not isinstance(default, str):
        c.add("bad_language", "default_language", f"{default!r} must be one of {languages}")
        default = ""
    return default, tuple(str(lang) for lang in languages if lang in SUPPORTED_LANGUAGES)


def _read_steps(raw: object, ctx: _Context) -> list[ReminderStep]:
    c = ctx.collector
    if not isinstance(raw, list) or not raw:
        c.add("missing_field", "steps", "at least one [[steps]] entry is required")
        return []
    steps: list[ReminderStep] = []
    for i, item in enumerate(raw):
        step = _read_step(item, f"steps[{i}]", ctx)
        if step is None:
            continue
        if any(s.code == step.code for s in steps):
            c.add("duplicate_step", f"steps[{i}].code", f"step {step.code!r} defined twice")
            continue
        steps.append(step)
    return sorted(steps, key=lambda s: s.offset_days)


def _check_cross_rules(
    steps: Sequence[ReminderStep], quiet: QuietHours, jurisdiction: str, c: _Collector
) -> None:
    for step in steps:
        if quiet.window_at(step.send_at) is not None:
            msg = f"{step.send_at:%H:%M} is inside quiet hours; it would always be moved"
            c.add("send_time_in_quiet_hours", f"steps.{step.code}.send_at", msg)
    if jurisdiction == "CN" and not any(
        s.kind == "overdue_notice" and s.legally_required for s in steps
    ):
        msg = "CN requires a legally required overdue notice before any negative credit report"
        c.add("legal_notice_missing", "steps", msg)


def load_policy(
    mapping: Mapping[str, object], *, catalog: TemplateCatalog | None = None
) -> ReminderPolicy:
    """Validate ``mapping`` (e.g. ``tomllib.load`` output) into a :class:`ReminderPolicy`.

    Raises :class:`PolicyError` carrying every :class:`Problem` found. Templates
    are checked against ``catalog`` (default: the shipped catalog) for every
    language the policy declares.
    """
    c = _Collector()
    c.unknown_keys(mapping, _TOP_KEYS, "")
    policy_id = c.text(mapping, "policy_id", "policy_id")
    jurisdiction = c.text(mapping, "jurisdiction", "jurisdiction")
    version = c.integer(mapping.get("version", 1), "version", "bad_type", 1, 10**6)
    default_language, languages = _read_languages(mapping, c)
    quiet = _read_quiet_hours(mapping.get("quiet_hours"), c)
    caps = _read_caps(mapping.get("caps"), c)
    timeouts = _read_timeouts(
        mapping.get("receipt_timeout_minutes"), "receipt_timeout_minutes", c
    )
    ctx = _Context(c, catalog or default_catalog(), languages, timeouts)
    steps = _read_steps(mapping.get("steps"), ctx)
    notices = _read_notices(mapping.get("notices"), ctx)
    if quiet is not None and jurisdiction:
        _check_cross_rules(steps, quiet[0].union(quiet[1]), jurisdiction, c)
    if c.problems:
        raise PolicyError(c.problems)
    assert policy_id and jurisdiction and version and quiet and caps
    product = mapping.get("product", "*")
    return ReminderPolicy(
        policy_id=policy_id, version=version, jurisdiction=jurisdiction,
        product=str(product), default_language=default_language, languages=languages,
        default_quiet_hours=quiet[0], legal_quiet_hours=quiet[1], caps=caps, steps=tuple(steps),
        notices=tuple(notices),
    )


@lru_cache(maxsize=1)
def default_policy() -> ReminderPolicy:
    """The CN default policy shipped as ``lendsafe/data/reminders/default_policy.toml``."""
    source = resources.files("lendsafe").joinpath("data", "reminders", "default_policy.toml")
    return load_policy(tomllib.loads(source.read_text(encoding="utf-8")))


# --------------------------------------------------------------------------- planning inputs


class PlanningError(ValueError):
    """Reminders cannot be planned for these inputs."""


class UnreachableBorrowerError(PlanningError):
    """A legally required notice has no channel the borrower can be reached on."""

    def __init__(self, borrower_id: str, loan_id: str, step_code: str, channels: Iterable[str]):
        self.borrower_id, self.loan_id, self.step_code = borrower_id, loan_id, step_code
        super().__init__(
            f"borrower {borrower_id!r} cannot be reached for legally required step "
            f"{step_code!r} of loan {loan_id!r}: no address for any of {tuple(channels)}"
        )


@dataclass(frozen=True)
class Installment:
    """One scheduled repayment of a loan."""

    loan_id: str
    seq: int
    due_date: date
    amount_due_minor: int
    currency: str

    def __post_init__(self) -> None:
        if not self.loan_id or isinstance(self.seq, bool) or self.seq < 0:
            raise PlanningError(f"installment needs a loan_id and seq >= 0: {self!r}")
        Money(self.amount_due_minor, self.currency)  # validates amount type and currency


@dataclass(frozen=True)
class Borrower:
    """Who to remind and how: zone, language, channel addresses and opt-outs.

    ``opt_outs`` holds channel names and/or ``"marketing"`` (everything that is
    not legally required). ``quiet_hours`` replaces the policy default but never
    the legal bound.
    """

    borrower_id: str
    time_zone: str | tzinfo
    language: str
    addresses: Mapping[str, str] = field(default_factory=dict)
    opt_outs: frozenset[str] = frozenset()
    quiet_hours: QuietHours | None = None

    def __post_init__(self) -> None:
        bad = sorted(set(self.addresses) - set(CHANNELS))
        bad += sorted(self.opt_outs - set(CHANNELS) - {OPT_OUT_ALL_OPTIONAL})
        if bad:
            raise PlanningError(f"borrower {self.borrower_id!r}: unknown channel(s) {bad}")

    def zone(self) -> tzinfo:
        """The borrower's time zone, resolving an IANA name if one was given."""
        if not isinstance(self.time_zone, str):
            return self.time_zone
        try:
            return ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise PlanningError(f"unknown time zone {self.time_zone!r}") from exc


# --------------------------------------------------------------------------- planning output


def dedup_key(loan_id: str, installment_seq: int, step_code: str, channel: str) -> str:
    """Stable key ``rem:{loan_id}:{seq}:{step}:{channel}``, components percent-encoded."""
    return ":".join(("rem", *(quote(str(p), safe="+") for p in (
        loan_id, installment_seq, step_code, channel))))


def step_key(loan_id: str, installment_seq: int, step_code: str) -> str:
    """Key of a step regardless of channel: the dedup key without its channel part."""
    return dedup_key(loan_id, installment_seq, step_code, "").rstrip(":")


@dataclass(frozen=True)
class ChannelTarget:
    """One channel to try for a reminder, in preference order."""

    channel: str
    address: str
    dedup_key: str
    receipt_timeout: timedelta


@dataclass(frozen=True)
class PlannedReminder:
    """One (installment, step) to send, with times in UTC and ordered channels."""

    borrower_id: str
    loan_id: str
    installment_seq: int
    step_code: str
    offset_days: int
    kind: StepKind
    legally_required: bool
    template_id: str
    language: str
    due_date: date
    amount_due_minor: int
    currency: str
    nominal_at: datetime
    planned_at: datetime
    expires_at: datetime
    targets: tuple[ChannelTarget, ...]

    @property
    def step_key(self) -> str:
        """Channel-independent key of this step (for caps and per-step bookkeeping)."""
        return step_key(self.loan_id, self.installment_seq, self.step_code)

    @property
    def dedup_keys(self) -> tuple[str, ...]:
        """Dedup keys of the targets, in preference order."""
        return tuple(t.dedup_key for t in self.targets)

    def context(self, *, loan_ref: str, how_to_pay: str) -> dict[str, object]:
        """Template context for :func:`~lendsafe.domain.reminders.templates.render`."""
        return {
            "amount": Money(self.amount_due_minor, self.currency),
            "due_date": self.due_date,
            "loan_ref": loan_ref,
            "how_to_pay": how_to_pay,
            "days_left": max(0, -self.offset_days),
            "days_overdue": max(0, self.offset_days),
        }


SkipReason = Literal["expired", "opted_out", "no_reachable_channel", "cap_exceeded"]


@dataclass(frozen=True)
class SkippedReminder:
    """An (installment, step) that will not be sent, and why."""

    loan_id: str
    installment_seq: int
    step_code: str
    reason: SkipReason


@dataclass(frozen=True)
class ReminderPlan:
    """Everything the planner decided: reminders to send and steps skipped."""

    reminders: tuple[PlannedReminder, ...]
    skipped: tuple[SkippedReminder, ...]


# --------------------------------------------------------------------------- planning


def _targets(
    step: ReminderStep, inst: Installment, borrower: Borrower
) -> tuple[tuple[ChannelTarget, ...], SkipReason | None]:
    targets: list[ChannelTarget] = []
    opted_out = False
    for channel in step.channels:
        address = borrower.addresses.get(channel)
        if not address:
            continue
        if not step.legally_required and (
            channel in borrower.opt_outs or OPT_OUT_ALL_OPTIONAL in borrower.opt_outs
        ):
            opted_out = True
            continue
        key = dedup_key(inst.loan_id, inst.seq, step.code, channel)
        targets.append(ChannelTarget(channel, address, key, step.receipt_timeout(channel)))
    if targets:
        return tuple(targets), None
    if step.legally_required:
        raise UnreachableBorrowerError(borrower.borrower_id, inst.loan_id, step.code, step.channels)
    return (), "opted_out" if opted_out else "no_reachable_channel"


@dataclass(frozen=True)
class _Setting:
    borrower: Borrower
    policy: ReminderPolicy
    tz: tzinfo
    quiet: QuietHours
    language: str
    not_before: datetime


def _draft(
    inst: Installment, step: ReminderStep, s: _Setting
) -> PlannedReminder | SkippedReminder:
    targets, reason = _targets(step, inst, s.borrower)
    if reason is not None:
        return SkippedReminder(inst.loan_id, inst.seq, step.code, reason)
    nominal = resolve_local(inst.due_date + timedelta(days=step.offset_days), step.send_at, s.tz)
    expires = nominal + step.expiry
    planned = next_allowed_time(max(nominal, s.not_before), s.tz, s.quiet)
    if planned >= expires:
        return SkippedReminder(inst.loan_id, inst.seq, step.code, "expired")
    return PlannedReminder(
        borrower_id=s.borrower.borrower_id, loan_id=inst.loan_id, installment_seq=inst.seq,
        step_code=step.code, offset_days=step.offset_days, kind=step.kind,
        legally_required=step.legally_required, template_id=step.template_id,
        language=s.language, due_date=inst.due_date, amount_due_minor=inst.amount_due_minor,
        currency=inst.currency, nominal_at=nominal, planned_at=planned, expires_at=expires,
        targets=targets,
    )


def _apply_caps(
    drafts: Sequence[PlannedReminder], history: Sequence[datetime], s: _Setting
) -> tuple[list[PlannedReminder], list[SkippedReminder]]:
    """Greedy in time order: a reminder over a cap moves to the next local day's first
    allowed instant, and is skipped (``cap_exceeded``) once that passes its expiry."""
    heap = [(d.planned_at, i, d) for i, d in enumerate(drafts)]
    heapq.heapify(heap)
    sent, kept, skipped = list(history), [], []
    while heap:
        at, i, draft = heapq.heappop(heap)
        if within_caps(sent, at, s.tz, s.policy.caps):
            sent.append(at)
            kept.append(_with_time(draft, at))
            continue
        later = next_allowed_time(start_of_next_local_day(at, s.tz), s.tz, s.quiet)
        if later >= draft.expires_at:
            skipped.append(SkippedReminder(
                draft.loan_id, draft.installment_seq, draft.step_code, "cap_exceeded"))
        else:
            heapq.heappush(heap, (later, i, draft))
    return kept, skipped


def _with_time(draft: PlannedReminder, at: datetime) -> PlannedReminder:
    return draft if draft.planned_at == at else replace(draft, planned_at=at)


def plan_reminders_detailed(
    installments: Iterable[Installment],
    borrower: Borrower,
    policy: ReminderPolicy,
    *,
    not_before: datetime,
    sent_history: Mapping[str, Sequence[datetime]] | None = None,
) -> ReminderPlan:
    """Plan every (installment, step); also report skipped steps with their reason.

    ``sent_history`` maps loan id -> UTC instants of contacts already made for
    that loan (one per delivered step); they count towards the caps.
    """
    if not_before.tzinfo is None or not_before.utcoffset() is None:
        raise PlanningError("not_before must be an aware datetime")
    tz = borrower.zone()
    setting = _Setting(borrower, policy, tz, policy.quiet_hours_for(borrower),
                       policy.language_for(borrower), not_before.astimezone(UTC))
    by_loan: dict[str, list[PlannedReminder]] = {}
    skipped: list[SkippedReminder] = []
    for inst in installments:
        for step in policy.steps:
            result = _draft(inst, step, setting)
            if isinstance(result, SkippedReminder):
                skipped.append(result)
            else:
                by_loan.setdefault(inst.loan_id, []).append(result)
    kept: list[PlannedReminder] = []
    for loan_id, drafts in by_loan.items():
        ok, capped = _apply_caps(drafts, (sent_history or {}).get(loan_id, ()), setting)
        kept += ok
        skipped += capped
    kept.sort(key=lambda r: (r.planned_at, r.loan_id, r.installment_seq, r.offset_days))
    return ReminderPlan(tuple(kept), tuple(skipped))


def plan_reminders(
    installments: Iterable[Installment],
    borrower: Borrower,
    policy: ReminderPolicy,
    *,
    not_before: datetime,
    sent_history: Mapping[str, Sequence[datetime]] | None = None,
) -> list[PlannedReminder]:
    """Planned reminders ordered by send time; see :func:`plan_reminders_detailed`."""
    plan = plan_reminders_detailed(
        installments, borrower, policy, not_before=not_before, sent_history=sent_history
    )
    return list(plan.reminders)
