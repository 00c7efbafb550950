"""Pure control rules: roles data, conflicts, decisions, masking, TOTP vectors, throttling,
session tokens."""

from __future__ import annotations

import pytest

from lendsafe.adapters.security.tokens import TokenError, TokenSigner
from lendsafe.domain.control.approvals import ActionStatus, PendingAction, decision_problems
from lendsafe.domain.control.masking import mask_name, mask_national_id, mask_phone, mask_pii
from lendsafe.domain.control.roles import parse_roles
from lendsafe.domain.control.throttle import ThrottlePolicy, ThrottleState, after_failure, locked
from lendsafe.domain.control.totp import hotp, totp, verify_totp
from lendsafe.domain.problems import Refused
from lendsafe.services.access import role_catalogue

REQUIRED_ROLES = {"borrower", "underwriter", "risk_officer", "collector", "finance", "auditor",
                  "administrator"}


def test_packaged_roles_cover_the_issue_and_no_role_conflicts_with_itself() -> None:
    catalogue = role_catalogue()
    assert set(catalogue.roles) >= REQUIRED_ROLES
    for name in catalogue.roles:
        assert catalogue.conflicts([name]) == []
    assert not catalogue.is_staff(["borrower"]) and catalogue.is_staff(["auditor"])


@pytest.mark.parametrize(("roles", "rule"), [
    (("underwriter", "risk_officer"), "originate-and-write-off"),
    (("collector", "finance"), "collect-and-reverse"),
    (("auditor", "operations"), "audit-independence-booking"),
    (("auditor", "administrator"), "audit-independence-users"),
])
def test_conflicting_roles(roles: tuple[str, str], rule: str) -> None:
    problems = role_catalogue().conflicts(roles)
    assert rule in {p.figures["rule"] for p in problems}


def test_roles_data_is_checked() -> None:
    with pytest.raises(Refused, match="unknown permission"):
        parse_roles({"permissions": {"a": "x"}, "roles": {"r": {"permissions": ["b"]}}})
    with pytest.raises(Refused, match="break"):
        parse_roles({"permissions": {"a": "", "b": ""},
                     "roles": {"r": {"permissions": ["a", "b"]}},
                     "conflicts": [{"name": "ab", "permissions": ["a", "b"]}]})


def test_decision_rules() -> None:
    action = PendingAction(1, "k", "t:1", {}, "user:m", "why")
    perms = frozenset({"approve.k"})
    assert decision_problems(action, "user:c", perms, "approve.k") == []
    assert {p.code for p in decision_problems(action, "user:m", perms, "approve.k")} == {
        "control.self_approval"}
    assert {p.code for p in decision_problems(action, "user:c", frozenset(), "approve.k")} == {
        "control.permission"}
    done = PendingAction(1, "k", "t:1", {}, "user:m", "why", ActionStatus.APPROVED)
    assert {p.code for p in decision_problems(done, "user:c", perms, "approve.k")} == {
        "control.not_pending"}


def test_masking() -> None:
    assert mask_phone("13812345678") == "138****5678"
    assert mask_national_id("110101199003071234") == "110***********1234"
    assert mask_name("张三丰") == "张**"
    assert mask_name("Alice Smith") == "A**** S****"
    assert mask_pii({"phone": "13812345678", "secret": "x", "address": None}) == {
        "phone": "138****5678", "address": None}


def test_rfc_4226_and_6238_vectors() -> None:
    secret = b"12345678901234567890"
    # RFC 4226 Appendix D
    assert [hotp(secret, c) for c in range(3)] == ["755224", "287082", "359152"]
    # RFC 6238 Appendix B (SHA-1)
    assert totp(secret, 59, digits=8) == "94287082"
    assert totp(secret, 1111111109, digits=8) == "07081804"
    assert totp(secret, 2000000000, digits=8) == "69279037"
    assert verify_totp(secret, totp(secret, 1000), 1000 + 30)
    assert not verify_totp(secret, totp(secret, 1000), 1000 + 120)
    assert not verify_totp(secret, "abcdef", 1000)


def test_exponential_lockout() -> None:
    policy = ThrottlePolicy(free_attempts=3, base_seconds=2, cap_seconds=60)
    state, now = ThrottleState(), 10_000_000
    for _ in range(2):
        state = after_failure(state, now, policy)
        assert not locked(state, now)
    locks = []
    for _ in range(6):
        state = after_failure(state, now, policy)
        locks.append((state.locked_until_micros - now) // 1_000_000)
    assert locks == [2, 4, 8, 16, 32, 60]
    fresh = after_failure(state, now + 2 * 3600 * 1_000_000, policy)
    assert fresh.failures == 1  # old failures are forgotten after the window


def test_tokens_expire_and_refuse_forgery() -> None:
    signer = TokenSigner(b"k" * 32)
    token = signer.issue("sid", "user:a", 1000, 1900)
    assert signer.check(token, 1899).subject == "user:a"
    with pytest.raises(TokenError):
        signer.check(token, 1900)
    with pytest.raises(TokenError):
        TokenSigner(b"j" * 32).check(token, 1000)
    for bad in ("", "lst1", "lst1.a.b", token + "x", token.replace("lst1", "lst2")):
        with pytest.raises(TokenError):
            signer.check(bad, 1000)
