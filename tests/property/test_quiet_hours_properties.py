"""Property tests: quiet hours, caps and dedup keys hold in every zone, schedule and "now"."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from urllib.parse import quote
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lendsafe.domain.reminders.policy import (
    Borrower,
    Installment,
    ReminderPlan,
    ReminderPolicy,
    ReminderStep,
    UnreachableBorrowerError,
    dedup_key,
    plan_reminders_detailed,
)
from lendsafe.domain.reminders.quiet_hours import (
    Caps,
    QuietHours,
    QuietWindow,
    effective_quiet_hours,
    next_allowed_time,
)

ZONES = [
    "America/New_York", "Europe/London", "Australia/Sydney", "Asia/Shanghai",
    "America/Santiago", "Asia/Kolkata", "Pacific/Chatham", "Australia/Lord_Howe",
]
CHANNELS = ("app_push", "sms", "voice", "email")
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
PLAN_SETTINGS = settings(SETTINGS, max_examples=150)



@cache
def transitions(zone_name: str, year: int) -> tuple[datetime, ...]:
    """UTC instants (to the minute) at which ``zone_name`` changes its UTC offset in ``year``."""
    zone = ZoneInfo(zone_name)
    found = []
    day = datetime(year, 1, 1, tzinfo=UTC)
    while day.year == year:
        nxt = day + timedelta(days=1)
        if day.astimezone(zone).utcoffset() != nxt.astimezone(zone).utcoffset():
            lo, hi = day, nxt
            while hi - lo > timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                same = mid.astimezone(zone).utcoffset() == lo.astimezone(zone).utcoffset()
                lo, hi = (mid, hi) if same else (lo, mid)
            found.append(hi.replace(second=0, microsecond=0))
        day = nxt
    return tuple(found)


ALL_TRANSITIONS = sorted({t for z in ZONES for y in (2024, 2025) for t in transitions(z, y)})
#: local wall times at which some of the zones above jump
DST_WALL_TIMES = [time(0), time(0, 30), time(1), time(1, 30), time(2), time(2, 30), time(2, 45),
                  time(3), time(3, 30), time(3, 45)]

zones = st.sampled_from(ZONES).map(ZoneInfo)
minutes_of_day = st.one_of(
    st.integers(0, 24 * 60 - 1).map(lambda m: time(m // 60, m % 60)),
    st.sampled_from(DST_WALL_TIMES),
)
near_transitions = st.builds(
    lambda t, minutes: t + timedelta(minutes=minutes),
    st.sampled_from(ALL_TRANSITIONS), st.integers(-36 * 60, 36 * 60),
)
instants = st.one_of(
    st.datetimes(datetime(2000, 1, 1), datetime(2040, 1, 1), timezones=st.just(UTC)),
    near_transitions,
)
due_dates = st.one_of(
    st.dates(date(2001, 1, 1), date(2039, 1, 1)),
    st.builds(lambda t, d: t.date() + timedelta(days=d), st.sampled_from(ALL_TRANSITIONS),
              st.integers(-12, 12)),
)


@st.composite
def quiet_hours(draw: st.DrawFn) -> QuietHours:
    windows = []
    for _ in range(draw(st.integers(1, 3))):
        start = draw(minutes_of_day)
        length = draw(st.integers(1, 10 * 60))
        end_minute = (start.hour * 60 + start.minute + length) % (24 * 60)
        end = draw(st.sampled_from([time(end_minute // 60, end_minute % 60), *DST_WALL_TIMES]))
        assume(end != start)
        windows.append(QuietWindow(start, end))
    try:
        return QuietHours(tuple(windows))
    except ValueError:
        assume(False)
        raise


def is_quiet_locally(instant: datetime, tz: ZoneInfo, quiet: QuietHours) -> bool:
    """Independent check: the wall clock in ``tz`` inside any [start, end) window."""
    wall = instant.astimezone(tz).time().replace(tzinfo=None)
    for w in quiet.windows:
        inside = (wall >= w.start or wall < w.end) if w.start > w.end else w.start <= wall < w.end
        if inside:
            return True
    return False


@st.composite
def zone_and_instant(draw: st.DrawFn) -> tuple[ZoneInfo, datetime]:
    """A zone and an instant, often within a day and a half of one of its DST changes."""
    name = draw(st.sampled_from(ZONES))
    own = [t for y in (2024, 2025) for t in transitions(name, y)]
    near = st.builds(lambda t, m: t + timedelta(minutes=m), st.sampled_from(own),
                     st.integers(-36 * 60, 36 * 60)) if own else instants
    return ZoneInfo(name), draw(st.one_of(instants, near))


@SETTINGS
@given(zone_instant=zone_and_instant(), quiet=quiet_hours())
def test_next_allowed_time_is_the_first_non_quiet_instant(
    zone_instant: tuple[ZoneInfo, datetime], quiet: QuietHours
) -> None:
    zone, candidate = zone_instant
    got = next_allowed_time(candidate, zone, quiet)
    assert got >= candidate
    assert not is_quiet_locally(got, zone, quiet)
    if got > candidate:
        assert is_quiet_locally(candidate, zone, quiet)
        # minimal: one second earlier is still quiet (or before the candidate)
        assert got - timedelta(seconds=1) < candidate or is_quiet_locally(
            got - timedelta(seconds=1), zone, quiet)
        assert got - candidate <= timedelta(days=2)
    else:
        assert not is_quiet_locally(candidate, zone, quiet)


@st.composite
def policies(draw: st.DrawFn) -> ReminderPolicy:
    default = draw(quiet_hours())
    legal = QuietHours((QuietWindow(time(22), time(8)),))
    try:
        default.union(legal)
    except ValueError:
        assume(False)
    offsets = draw(st.lists(st.integers(-10, 10), min_size=1, max_size=6, unique=True))
    steps = tuple(draw(steps_for(offset)) for offset in sorted(offsets))
    per_day = draw(st.integers(1, 4))
    caps = Caps(per_day, draw(st.integers(per_day, 12)))
    return ReminderPolicy("prop", 1, "XX", "*", "zh", ("zh", "en"), default, legal, caps, steps)


@st.composite
def steps_for(draw: st.DrawFn, offset: int) -> ReminderStep:
    channels = tuple(draw(st.permutations(CHANNELS))[: draw(st.integers(1, 4))])
    return ReminderStep(
        code="T0" if offset == 0 else f"T{offset:+d}", offset_days=offset,
        send_at=draw(minutes_of_day), kind="overdue_notice" if offset > 0 else "reminder",
        legally_required=draw(st.booleans()), channels=channels, template_id="overdue_notice",
        expiry=timedelta(hours=draw(st.integers(1, 24 * 6))),
        receipt_timeouts=tuple((c, timedelta(minutes=10)) for c in channels),
    )


loan_ids = st.sampled_from(["L1", "L:2", "L%3", "贷款-4"])


@st.composite
def installments(draw: st.DrawFn) -> list[Installment]:
    start = draw(due_dates)
    items = []
    for seq in range(draw(st.integers(1, 6))):
        due = start + timedelta(days=draw(st.integers(0, 60)))
        items.append(Installment(draw(loan_ids), seq, due, draw(st.integers(0, 10**8)), "CNY"))
    return list({(i.loan_id, i.seq): i for i in items}.values())


@st.composite
def borrowers(draw: st.DrawFn) -> Borrower:
    addresses = {c: f"addr-{c}" for c in draw(st.sets(st.sampled_from(CHANNELS), min_size=1))}
    opt_outs = draw(st.sets(st.sampled_from((*CHANNELS, "marketing"))))
    own = draw(st.none() | quiet_hours())
    return Borrower("B", draw(st.sampled_from(ZONES)), draw(st.sampled_from(["zh", "en"])),
                    addresses, frozenset(opt_outs), own)


def _plan_or_reject(
    items: list[Installment], who: Borrower, policy: ReminderPolicy, now: datetime
) -> ReminderPlan:
    try:
        return plan_reminders_detailed(items, who, policy, not_before=now)
    except UnreachableBorrowerError:
        assume(False)
    raise AssertionError("unreachable")


@PLAN_SETTINGS
@given(policy=policies(), items=installments(), who=borrowers(), now=instants)
def test_plans_respect_quiet_hours_expiry_and_caps(
    policy: ReminderPolicy, items: list[Installment], who: Borrower, now: datetime
) -> None:
    now = min(now, datetime.combine(items[0].due_date, time(), UTC))  # keep plans non-empty
    plan = _plan_or_reject(items, who, policy, now)
    zone = ZoneInfo(str(who.time_zone))
    own = who.quiet_hours  # set aside when it and the legal bound leave no minute open
    if own is not None and not own.leaves_time_with(policy.legal_quiet_hours):
        own = None
    quiet = (own or policy.default_quiet_hours).union(policy.legal_quiet_hours)
    for r in plan.reminders:
        assert not is_quiet_locally(r.planned_at, zone, quiet)
        assert not is_quiet_locally(r.planned_at, zone, policy.legal_quiet_hours)
        assert now <= r.planned_at < r.expires_at
        assert r.planned_at.utcoffset() == timedelta(0)
    by_loan: dict[str, list[datetime]] = {}
    for r in plan.reminders:
        by_loan.setdefault(r.loan_id, []).append(r.planned_at)
    for times in by_loan.values():
        per_day = Counter(t.astimezone(zone).date() for t in times)
        assert max(per_day.values()) <= policy.caps.per_day
        for t in times:
            window = [u for u in times if t - timedelta(days=7) < u <= t]
            assert len(window) <= policy.caps.per_week


@PLAN_SETTINGS
@given(policy=policies(), items=installments(), who=borrowers(), now=instants)
def test_every_step_is_planned_or_skipped_once_with_unique_stable_keys(
    policy: ReminderPolicy, items: list[Installment], who: Borrower, now: datetime
) -> None:
    plan = _plan_or_reject(items, who, policy, now)
    decided = [(r.loan_id, r.installment_seq, r.step_code) for r in plan.reminders]
    decided += [(s.loan_id, s.installment_seq, s.step_code) for s in plan.skipped]
    expected = [(i.loan_id, i.seq, s.code) for i in items for s in policy.steps]
    assert sorted(decided) == sorted(expected)
    keys = [t.dedup_key for r in plan.reminders for t in r.targets]
    assert len(keys) == len(set(keys))
    for r in plan.reminders:
        for t in r.targets:
            parts = (r.loan_id, str(r.installment_seq), r.step_code, t.channel)
            assert t.dedup_key == "rem:" + ":".join(quote(p, safe="+") for p in parts)
    # stable: planning again from a later "now" or in another order gives the same keys
    later = plan_reminders_detailed(list(reversed(items)), who, policy,
                                    not_before=now + timedelta(hours=5))
    before = {(r.loan_id, r.installment_seq, r.step_code): r.dedup_keys for r in plan.reminders}
    for r in later.reminders:
        old = before.get((r.loan_id, r.installment_seq, r.step_code))
        assert old is None or old == r.dedup_keys


ids = st.text(alphabet=st.sampled_from("ab:%+-_T0 9/"), min_size=1, max_size=6)


@SETTINGS
@given(a=st.tuples(ids, st.integers(0, 99), ids, st.sampled_from(CHANNELS)),
       b=st.tuples(ids, st.integers(0, 99), ids, st.sampled_from(CHANNELS)))
def test_dedup_key_is_injective(a: tuple[str, int, str, str], b: tuple[str, int, str, str]) -> None:
    assert (dedup_key(*a) == dedup_key(*b)) == (a == b)
    assert dedup_key(*a) == dedup_key(*a)



def test_a_preference_that_closes_the_day_gives_way_to_the_policy_default() -> None:
    legal = QuietHours((QuietWindow(time(22), time(8)),))
    default = QuietHours((QuietWindow(time(21), time(8)),))
    closing = QuietHours((QuietWindow(time(7), time(23)),))  # 07-23 + 22-08: all day
    narrow = QuietHours((QuietWindow(time(12), time(13)),))
    assert not closing.leaves_time_with(legal) and narrow.leaves_time_with(legal)
    assert effective_quiet_hours(closing, default, legal) == default.union(legal)
    assert effective_quiet_hours(narrow, default, legal) == narrow.union(legal)
    assert effective_quiet_hours(None, default, legal) == default.union(legal)
