"""Unit tests for reminder policy loading, planning, quiet hours and caps."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from lendsafe.domain.reminders.policy import (
    Borrower,
    Installment,
    PlanningError,
    PolicyError,
    UnreachableBorrowerError,
    dedup_key,
    default_policy,
    load_policy,
    plan_reminders,
    plan_reminders_detailed,
    step_key,
)
from lendsafe.domain.reminders.quiet_hours import (
    Caps,
    QuietHours,
    QuietWindow,
    next_allowed_time,
    resolve_local,
    within_caps,
)
from lendsafe.domain.reminders.templates import load_catalog, render

CST = timezone(timedelta(hours=8))  # Asia/Shanghai has had no DST since 1991
NY = ZoneInfo("America/New_York")
NOW = datetime(2025, 3, 1, tzinfo=UTC)
ALL_ADDRESSES = {"app_push": "tok-1", "sms": "+8613800000000", "voice": "+8613800000000",
                 "email": "b@example.com"}


def base_mapping() -> dict[str, Any]:
    """A small valid CN policy written out by hand (independent of the shipped file)."""
    return {
        "policy_id": "test", "jurisdiction": "CN", "default_language": "zh",
        "languages": ["zh", "en"],
        "quiet_hours": {"default": ["21:00-08:00"], "legal": ["22:00-08:00"]},
        "caps": {"per_day": 3, "per_week": 10},
        "receipt_timeout_minutes": {"app_push": 10, "sms": 20, "voice": 5, "email": 60},
        "steps": [
            {"code": "T-1", "offset_days": -1, "send_at": "10:00", "kind": "reminder",
             "channels": ["app_push", "sms"], "template": "reminder_before_due",
             "expiry_hours": 10},
            {"code": "T+1", "offset_days": 1, "send_at": "10:00", "kind": "overdue_notice",
             "legally_required": True, "channels": ["sms", "app_push", "voice"],
             "template": "overdue_notice", "expiry_hours": 48,
             "receipt_timeout_minutes": {"sms": 15}},
        ],
    }


def borrower(**overrides: Any) -> Borrower:
    fields: dict[str, Any] = {"borrower_id": "B1", "time_zone": "Asia/Shanghai",
                              "language": "zh", "addresses": ALL_ADDRESSES}
    return Borrower(**(fields | overrides))


INST = Installment("L1", 1, date(2025, 3, 15), 100690, "CNY")


# --------------------------------------------------------------------------- loading


def test_shipped_default_policy_is_the_cn_cadence() -> None:
    policy = default_policy()
    assert [s.code for s in policy.steps] == ["T-3", "T-1", "T0", "T+1", "T+3"]
    assert [s.offset_days for s in policy.steps] == [-3, -1, 0, 1, 3]
    t0 = policy.steps[2]
    assert t0.send_at == time(9, 0) and t0.kind == "reminder"
    assert policy.legal_quiet_hours == QuietHours((QuietWindow(time(22), time(8)),))
    assert policy.default_quiet_hours == QuietHours((QuietWindow(time(21), time(8)),))
    assert (policy.caps.per_day, policy.caps.per_week) == (3, 10)
    assert [s.code for s in policy.steps if s.legally_required] == ["T+1"]
    assert all(s.kind == "overdue_notice" for s in policy.steps if s.offset_days > 0)


def test_load_policy_reads_steps_and_timeouts() -> None:
    policy = load_policy(base_mapping())
    step = policy.steps[1]
    assert step.channels == ("sms", "app_push", "voice")
    assert step.receipt_timeout("sms") == timedelta(minutes=15)  # step override
    assert step.receipt_timeout("voice") == timedelta(minutes=5)  # policy default
    assert step.expiry == timedelta(hours=48)


def _broken(path: list[Any], value: Any) -> dict[str, Any]:
    mapping = copy.deepcopy(base_mapping())
    target: Any = mapping
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return mapping


@pytest.mark.parametrize(
    ("path", "value", "code"),
    [
        (["steps", 0, "channels"], ["app_push", "pigeon"], "unknown_channel"),
        (["steps", 0, "channels"], ["sms", "sms"], "duplicate_channel"),
        (["steps", 0, "channels"], [], "no_channels"),
        (["steps", 0, "offset_days"], 500, "bad_offset"),
        (["steps", 0, "offset_days"], "-1", "bad_offset"),
        (["steps", 0, "send_at"], "9:00", "malformed_time"),
        (["steps", 0, "send_at"], "24:00", "malformed_time"),
        (["steps", 0, "send_at"], "10:60", "malformed_time"),
        (["steps", 0, "send_at"], "23:00", "send_time_in_quiet_hours"),
        (["steps", 0, "kind"], "overdue_notice", "kind_offset_mismatch"),
        (["steps", 0, "kind"], "nag", "bad_kind"),
        (["steps", 0, "code"], "T-2", "bad_step_code"),
        (["steps", 0, "code"], "minus-one", "bad_step_code"),
        (["steps", 0, "template"], "no_such_template", "unknown_template"),
        (["steps", 0, "expiry_hours"], 0, "bad_expiry"),
        (["steps", 0, "legally_required"], "yes", "bad_type"),
        (["steps", 0, "colour"], "red", "unknown_key"),
        (["steps", 1, "legally_required"], False, "legal_notice_missing"),
        (["receipt_timeout_minutes", "voice"], KeyError, "missing_timeout"),
        (["receipt_timeout_minutes", "fax"], 3, "unknown_channel"),
        (["receipt_timeout_minutes", "sms"], 0, "bad_timeout"),
        (["caps", "per_day"], 0, "bad_caps"),
        (["caps", "per_day"], 11, "bad_caps"),
        (["quiet_hours", "legal"], ["22:00"], "malformed_time"),
        (["quiet_hours", "default"], ["08:00-20:00", "20:00-08:00"], "bad_quiet_hours"),
        (["default_language"], "fr", "bad_language"),
        (["policy_id"], KeyError, "missing_field"),
        (["steps"], [], "missing_field"),
        (["extra"], 1, "unknown_key"),
    ],
)
def test_load_policy_reports_problem_codes(path: list[Any], value: Any, code: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(_broken(path, value))
    assert code in info.value.codes, info.value.problems
    assert all(p.path and p.message for p in info.value.problems)


def test_duplicate_step_code_is_reported() -> None:
    mapping = base_mapping()
    mapping["steps"].append(copy.deepcopy(mapping["steps"][0]))
    with pytest.raises(PolicyError) as info:
        load_policy(mapping)
    assert info.value.codes == {"duplicate_step"}


def test_template_missing_for_a_language_is_reported() -> None:
    zh_only = load_catalog({
        "reminder_before_due": {"zh": {"body": "{amount}"}, "en": {"body": "{amount}"}},
        "overdue_notice": {"zh": {"body": "{amount}"}},
    })
    with pytest.raises(PolicyError) as info:
        load_policy(base_mapping(), catalog=zh_only)
    problem = next(p for p in info.value.problems if p.code == "template_missing")
    assert "overdue_notice" in problem.message and "'en'" in problem.message


def test_all_problems_are_reported_at_once() -> None:
    mapping = _broken(["steps", 0, "channels"], ["pigeon"])
    mapping["steps"][1]["send_at"] = "25:00"
    mapping["caps"] = {"per_day": -1, "per_week": 10}
    with pytest.raises(PolicyError) as info:
        load_policy(mapping)
    assert {"unknown_channel", "malformed_time", "bad_caps"} <= info.value.codes
    assert "pigeon" in str(info.value)


# --------------------------------------------------------------------------- dedup keys


def test_dedup_key_format() -> None:
    assert dedup_key("L-42", 3, "T-1", "sms") == "rem:L-42:3:T-1:sms"
    assert dedup_key("L-42", 3, "T+1", "app_push") == "rem:L-42:3:T+1:app_push"
    assert step_key("L-42", 3, "T+1") == "rem:L-42:3:T+1"


def test_dedup_key_escapes_separators_so_keys_cannot_collide() -> None:
    a = dedup_key("A:1", 2, "T0", "sms")
    b = dedup_key("A", 1, "2:T0", "sms")  # would collide without escaping
    assert a != b
    assert a.count(":") == 4 and b.count(":") == 4


# --------------------------------------------------------------------------- planning


def _local(at: datetime) -> datetime:
    return at.astimezone(CST)


def test_plan_times_are_local_send_times_in_utc() -> None:
    planned = plan_reminders([INST], borrower(), load_policy(base_mapping()), not_before=NOW)
    assert [r.step_code for r in planned] == ["T-1", "T+1"]
    assert planned[0].planned_at == datetime(2025, 3, 14, 10, tzinfo=CST)
    assert planned[1].planned_at == datetime(2025, 3, 16, 10, tzinfo=CST)
    assert all(r.planned_at.tzinfo is UTC for r in planned)
    assert planned[1].expires_at == planned[1].nominal_at + timedelta(hours=48)


def test_plan_lists_channels_with_dedup_keys_in_preference_order() -> None:
    planned = plan_reminders([INST], borrower(), load_policy(base_mapping()), not_before=NOW)
    notice = planned[1]
    assert [t.channel for t in notice.targets] == ["sms", "app_push", "voice"]
    assert notice.dedup_keys == ("rem:L1:1:T+1:sms", "rem:L1:1:T+1:app_push",
                                 "rem:L1:1:T+1:voice")
    assert notice.targets[0].address == ALL_ADDRESSES["sms"]
    assert notice.targets[0].receipt_timeout == timedelta(minutes=15)


def test_unreachable_channels_are_dropped() -> None:
    b = borrower(addresses={"sms": "+86138"})
    planned = plan_reminders([INST], b, load_policy(base_mapping()), not_before=NOW)
    assert [[t.channel for t in r.targets] for r in planned] == [["sms"], ["sms"]]


def test_channel_opt_out_applies_to_optional_steps_only() -> None:
    b = borrower(opt_outs=frozenset({"sms"}))
    planned = plan_reminders([INST], b, load_policy(base_mapping()), not_before=NOW)
    assert [t.channel for t in planned[0].targets] == ["app_push"]
    assert [t.channel for t in planned[1].targets] == ["sms", "app_push", "voice"]


def test_marketing_opt_out_keeps_the_legally_required_notice() -> None:
    b = borrower(opt_outs=frozenset({"marketing"}))
    plan = plan_reminders_detailed([INST], b, load_policy(base_mapping()), not_before=NOW)
    assert [r.step_code for r in plan.reminders] == ["T+1"]
    assert [(s.step_code, s.reason) for s in plan.skipped] == [("T-1", "opted_out")]


def test_optional_step_without_reachable_channel_is_skipped() -> None:
    b = borrower(addresses={"voice": "+86138"})
    plan = plan_reminders_detailed([INST], b, load_policy(base_mapping()), not_before=NOW)
    assert [r.step_code for r in plan.reminders] == ["T+1"]
    assert [s.reason for s in plan.skipped] == ["no_reachable_channel"]


def test_borrower_without_reachable_channel_for_required_notice_is_an_error() -> None:
    b = borrower(addresses={"email": "b@example.com"})
    with pytest.raises(UnreachableBorrowerError, match=r"'B1'.*'T\+1'.*'L1'"):
        plan_reminders([INST], b, load_policy(base_mapping()), not_before=NOW)


def test_unknown_channel_in_borrower_addresses_is_an_error() -> None:
    with pytest.raises(PlanningError, match="pigeon"):
        borrower(addresses={"pigeon": "coop 7"})


def test_unknown_time_zone_and_naive_now_are_errors() -> None:
    policy = load_policy(base_mapping())
    with pytest.raises(PlanningError, match="Mars/Olympus"):
        plan_reminders([INST], borrower(time_zone="Mars/Olympus"), policy, not_before=NOW)
    with pytest.raises(PlanningError, match="aware"):
        plan_reminders([INST], borrower(), policy, not_before=datetime(2025, 3, 1))


def test_late_planning_sends_now_or_skips_expired_steps() -> None:
    policy = load_policy(base_mapping())
    now = datetime(2025, 3, 14, 15, 30, tzinfo=CST)  # T-1 was due at 10:00, expires 20:00
    planned = plan_reminders([INST], borrower(), policy, not_before=now)
    assert planned[0].step_code == "T-1" and planned[0].planned_at == now
    later = datetime(2025, 3, 14, 20, 0, tzinfo=CST)
    plan = plan_reminders_detailed([INST], borrower(), policy, not_before=later)
    assert [(s.step_code, s.reason) for s in plan.skipped] == [("T-1", "expired")]


def test_planning_late_in_the_evening_respects_the_legal_bound() -> None:
    """The borrower allows contact until 23:00, but CN forbids 22:00-08:00."""
    relaxed = QuietHours((QuietWindow(time(23), time(7)),))
    now = datetime(2025, 3, 16, 22, 30, tzinfo=CST)
    planned = plan_reminders([INST], borrower(quiet_hours=relaxed),
                             load_policy(base_mapping()), not_before=now)
    assert planned[0].step_code == "T+1"
    assert planned[0].planned_at == datetime(2025, 3, 17, 8, 0, tzinfo=CST)


def test_borrower_quiet_hours_move_the_send_time() -> None:
    late_riser = QuietHours((QuietWindow(time(21), time(11)),))
    planned = plan_reminders([INST], borrower(quiet_hours=late_riser),
                             load_policy(base_mapping()), not_before=NOW)
    assert planned[0].planned_at == datetime(2025, 3, 14, 11, 0, tzinfo=CST)
    assert planned[0].nominal_at == datetime(2025, 3, 14, 10, 0, tzinfo=CST)


def test_language_falls_back_to_policy_default() -> None:
    policy = load_policy(base_mapping())
    assert plan_reminders([INST], borrower(language="en"), policy, not_before=NOW)[0].language \
        == "en"
    assert plan_reminders([INST], borrower(language="fr"), policy, not_before=NOW)[0].language \
        == "zh"


def test_per_day_cap_defers_to_the_next_local_morning() -> None:
    mapping = base_mapping()
    mapping["caps"] = {"per_day": 1, "per_week": 10}
    mapping["steps"][0]["expiry_hours"] = 48
    # installment 2 is due two days after 1: its T-1 and installment 1's T+1 share 16 March
    second = Installment("L1", 2, date(2025, 3, 17), 5000, "CNY")
    planned = plan_reminders([INST, second], borrower(), load_policy(mapping), not_before=NOW)
    by_step = {(r.installment_seq, r.step_code): r.planned_at for r in planned}
    assert by_step[(1, "T+1")] == datetime(2025, 3, 16, 10, tzinfo=CST)
    assert by_step[(2, "T-1")] == datetime(2025, 3, 17, 8, tzinfo=CST)  # legal quiet end
    days = [_local(r.planned_at).date() for r in planned]
    assert len(days) == len(set(days)) == 4


def test_per_day_cap_skips_a_deferred_step_past_its_expiry() -> None:
    mapping = base_mapping()
    mapping["caps"] = {"per_day": 1, "per_week": 10}
    second = Installment("L1", 2, date(2025, 3, 17), 5000, "CNY")
    plan = plan_reminders_detailed([INST, second], borrower(), load_policy(mapping),
                                   not_before=NOW)
    skipped = [(s.installment_seq, s.step_code, s.reason) for s in plan.skipped]
    assert skipped == [(2, "T-1", "cap_exceeded")]


def test_cap_counts_sent_history_and_skips_when_expiry_passes() -> None:
    mapping = base_mapping()
    mapping["caps"] = {"per_day": 1, "per_week": 10}
    history = {"L1": [datetime(2025, 3, 14, 8, 30, tzinfo=CST)]}
    plan = plan_reminders_detailed([INST], borrower(), load_policy(mapping), not_before=NOW,
                                   sent_history=history)
    assert ("T-1", "cap_exceeded") in [(s.step_code, s.reason) for s in plan.skipped]
    assert [r.step_code for r in plan.reminders] == ["T+1"]


def test_plan_context_renders_with_shipped_templates() -> None:
    planned = plan_reminders([INST], borrower(), load_policy(base_mapping()), not_before=NOW)
    notice = planned[1]
    msg = render(notice.template_id, notice.language,
                 notice.context(loan_ref="LS-0001", how_to_pay="App > 还款"))
    assert "¥1,006.90" in msg.body and "2025年3月15日" in msg.body
    assert "逾期1天" in msg.body and "LS-0001" in msg.body


# --------------------------------------------------------------------------- quiet hours / DST

NIGHT = QuietHours((QuietWindow(time(21), time(8)),))


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        (datetime(2025, 6, 1, 21, 30), datetime(2025, 6, 2, 8, 0)),
        (datetime(2025, 6, 1, 7, 59), datetime(2025, 6, 1, 8, 0)),
        (datetime(2025, 6, 1, 21, 0), datetime(2025, 6, 2, 8, 0)),
        (datetime(2025, 6, 1, 20, 59), datetime(2025, 6, 1, 20, 59)),
        (datetime(2025, 6, 1, 8, 0), datetime(2025, 6, 1, 8, 0)),
    ],
)
def test_next_allowed_time_in_fixed_zone(local: datetime, expected: datetime) -> None:
    got = next_allowed_time(local.replace(tzinfo=CST), CST, NIGHT)
    assert got == expected.replace(tzinfo=CST)


def test_adjacent_windows_are_chained() -> None:
    quiet = QuietHours((QuietWindow(time(21), time(8)), QuietWindow(time(8), time(8, 30))))
    got = next_allowed_time(datetime(2025, 6, 1, 23, tzinfo=CST), CST, quiet)
    assert got == datetime(2025, 6, 2, 8, 30, tzinfo=CST)


def test_quiet_end_inside_spring_forward_gap_goes_to_the_transition() -> None:
    quiet = QuietHours((QuietWindow(time(0), time(2, 30)),))
    candidate = datetime(2024, 3, 10, 1, 0, tzinfo=NY)  # EST, 06:00 UTC
    got = next_allowed_time(candidate, NY, quiet)
    assert got == datetime(2024, 3, 10, 7, 0, tzinfo=UTC)  # 03:00 EDT, clocks jumped
    assert got.astimezone(NY).hour == 3


def test_repeated_hour_after_fall_back_is_quiet_again() -> None:
    quiet = QuietHours((QuietWindow(time(0, 30), time(1, 30)),))
    first_145 = datetime(2024, 11, 3, 5, 45, tzinfo=UTC)  # 01:45 EDT: allowed
    assert next_allowed_time(first_145, NY, quiet) == first_145
    second_110 = datetime(2024, 11, 3, 6, 10, tzinfo=UTC)  # 01:10 EST: quiet again
    assert next_allowed_time(second_110, NY, quiet) == datetime(2024, 11, 3, 6, 30, tzinfo=UTC)


def test_resolve_local_handles_missing_and_ambiguous_times() -> None:
    assert resolve_local(date(2024, 3, 10), time(2, 30), NY) == datetime(2024, 3, 10, 7,
                                                                          tzinfo=UTC)
    assert resolve_local(date(2024, 11, 3), time(1, 30), NY) == datetime(2024, 11, 3, 5, 30,
                                                                          tzinfo=UTC)
    santiago = ZoneInfo("America/Santiago")  # midnight does not exist on 2024-09-08
    got = resolve_local(date(2024, 9, 8), time(0, 0), santiago)
    assert got == datetime(2024, 9, 8, 4, 0, tzinfo=UTC)


def test_naive_candidate_is_rejected() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_allowed_time(datetime(2025, 1, 1), CST, NIGHT)


def test_quiet_hours_covering_the_whole_day_are_rejected() -> None:
    with pytest.raises(ValueError, match="whole day"):
        QuietHours((QuietWindow(time(8), time(20)), QuietWindow(time(20), time(8))))


# --------------------------------------------------------------------------- caps


def test_day_cap_uses_the_local_calendar_day() -> None:
    caps = Caps(per_day=1, per_week=10)
    yesterday_late = datetime(2025, 3, 14, 23, 30, tzinfo=CST)  # 15:30 UTC, same UTC day
    candidate = datetime(2025, 3, 15, 9, 0, tzinfo=CST)  # 01:00 UTC next UTC day
    assert within_caps([yesterday_late], candidate, CST, caps)
    assert not within_caps([datetime(2025, 3, 15, 0, 30, tzinfo=CST)], candidate, CST, caps)


def test_week_cap_is_a_rolling_seven_days() -> None:
    caps = Caps(per_day=2, per_week=2)
    candidate = datetime(2025, 3, 15, 9, 0, tzinfo=UTC)
    exactly_week_ago = candidate - timedelta(days=7)
    just_inside = candidate - timedelta(days=7) + timedelta(seconds=1)
    assert within_caps([exactly_week_ago, candidate - timedelta(days=1)], candidate, UTC, caps)
    assert not within_caps([just_inside, candidate - timedelta(days=1)], candidate, UTC, caps)


NOTICE = {"code": "RLF-A", "legally_required": True, "channels": ["app_push", "sms"],
          "template": "relief_applied", "expiry_hours": 72}


def test_event_notices_are_read_and_found_by_code() -> None:
    mapping = base_mapping()
    mapping["notices"] = [NOTICE]
    policy = load_policy(mapping)
    notice = policy.step("RLF-A")
    assert (notice.kind, notice.legally_required, notice.template_id) == (
        "notice", True, "relief_applied")
    assert notice.expiry == timedelta(hours=72) and notice.receipt_timeout("sms") == timedelta(
        minutes=20)
    assert policy.step("T-1").offset_days == -1  # cadence steps through the same lookup
    with pytest.raises(KeyError, match="no step or notice 'RLF-X'"):
        policy.step("RLF-X")


@pytest.mark.parametrize(("change", "code"), [
    ({"code": "T-9"}, "bad_notice_code"),          # looks like a cadence step
    ({"code": "relief"}, "bad_notice_code"),
    ({"template": "nope"}, "unknown_template"),
    ({"channels": ["fax"]}, "unknown_channel"),
    ({"expiry_hours": 0}, "bad_expiry"),
    ({"legally_required": "yes"}, "bad_type"),
    ({"offset_days": 3}, "unknown_key"),
])
def test_bad_event_notices_are_reported(change: dict[str, Any], code: str) -> None:
    mapping = base_mapping()
    mapping["notices"] = [{**NOTICE, **change}]
    with pytest.raises(PolicyError) as info:
        load_policy(mapping)
    assert code in info.value.codes, info.value.problems


def test_duplicate_notice_code_is_reported() -> None:
    mapping = base_mapping()
    mapping["notices"] = [NOTICE, dict(NOTICE)]
    with pytest.raises(PolicyError) as info:
        load_policy(mapping)
    assert info.value.codes == {"duplicate_step"}
