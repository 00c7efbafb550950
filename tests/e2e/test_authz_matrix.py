"""Authorisation matrix: every API route × every role → allow / deny / hidden (table-driven).

A route without an entry in ``EXPECTED`` (or ``PUBLIC``) fails the test, so a new route must
be given its row. ``allow``: authorised (2xx, or a business answer such as 409/422);
``deny``: 401/403; ``hidden``: 404 (the caller may not know the thing exists).
Staff sign in with passwords (sessions), the borrower with a phone one-time code through the
fake SMS provider, the integration with an API key.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from lendsafe.adapters.channels.fake_provider import FakeProvider
from lendsafe.bootstrap import Container, build
from lendsafe.config import Settings
from lendsafe.entrypoints.api.app import create_app
from lendsafe.services.access import create_api_key

PASSWORD = "correct horse battery staple"
STAFF = ("underwriter", "risk_officer", "collector", "finance", "operations", "auditor",
         "administrator")
ROLES = ("anonymous", "borrower", "integration", *STAFF)


@dataclass
class World:
    """A running API with one signed-in caller per role."""

    container: Container
    client: TestClient
    tokens: dict[str, str]
    sms: FakeProvider
    borrower_id: int
    other_borrower_id: int
    loan_id: int
    other_loan_id: int
    payment_id: int
    other_payment_id: int

    def headers(self, role: str) -> dict[str, str]:
        """Authorization header of ``role`` (none for anonymous)."""
        token = self.tokens.get(role)
        return {} if token is None else {"Authorization": f"Bearer {token}"}


def settings_for(tmp: Path) -> Settings:
    """Settings with every key and directory under ``tmp``."""
    master = base64.b64encode(b"k" * 32).decode()
    return Settings.from_env({"LENDSAFE_DATA_DIR": str(tmp),
                              "LENDSAFE_MASTER_KEYS": f"k1:{master}"})


def otp_login(client: TestClient, sms: FakeProvider, phone: str) -> str:
    """Sign a borrower in by one-time code; returns the session token."""
    assert client.post("/auth/otp/request", json={"phone": phone}).status_code == 202
    code = re.search(r"\b(\d{6})\b", sms.accepted[-1].body)
    assert code is not None
    answer = client.post("/auth/otp/verify", json={"phone": phone, "code": code.group(1)})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


def login(client: TestClient, username: str) -> str:
    """Sign a staff user in; returns the session token."""
    answer = client.post("/auth/login", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


def build_world(tmp: Path) -> World:
    """Loans for two borrowers, payments, one user per staff role, tokens for all."""
    container = build(settings_for(tmp))
    container.lending.initialise(date(2026, 3, 2))
    sms = FakeProvider(channels=["sms"])
    container.security.channel = sms
    lending = container.lending
    loan_id = lending.book("alice", "cn-bullet", 100_000, _term("14d"), actor="test")
    other_loan_id = lending.book("bob", "cn-bullet", 80_000, _term("14d"), actor="test")
    payment_id = lending.pay(loan_id, 1_000, "pay-alice-1")["payment_id"]
    other_payment_id = lending.pay(other_loan_id, 1_000, "pay-bob-1")["payment_id"]
    borrower_id = lending.loan_view(loan_id)["borrower_id"]
    other_borrower_id = lending.loan_view(other_loan_id)["borrower_id"]
    security = container.security
    security.set_pii(borrower_id, {"name": "Alice Li", "phone": "13812345678",
                                   "national_id": "110101199003071234",
                                   "address": "1 Long Street, Beijing"}, "test")
    security.set_pii(other_borrower_id, {"name": "Bob Wang", "phone": "13987654321"}, "test")
    for role in STAFF:
        security.create_user(f"{role}-user", PASSWORD, (role,))
    security.create_user("maker", PASSWORD, ("operations",))
    client = TestClient(create_app(container))
    tokens = {role: login(client, f"{role}-user") for role in STAFF}
    tokens["maker"] = login(client, "maker")
    tokens["borrower"] = otp_login(client, sms, "13812345678")
    tokens["integration"] = create_api_key(container.engine, "integration", label="partner")
    return World(container, client, tokens, sms, borrower_id, other_borrower_id, loan_id,
                 other_loan_id, payment_id, other_payment_id)


def _term(text: str) -> Any:
    from lendsafe.domain.lending.product import parse_term

    return parse_term(text)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One world per module (argon2 hashing makes sign-ins cost ~0.1 s each)."""
    built = build_world(tmp_path_factory.mktemp("world"))
    yield built
    built.container.engine.dispose()


# --------------------------------------------------------------------------- the table

LOAN_READERS = {"underwriter", "risk_officer", "collector", "finance", "operations", "auditor"}
PROPOSERS = {"underwriter", "risk_officer", "collector", "finance", "operations",
             "administrator"}
CONTROL_READERS = {"underwriter", "risk_officer", "finance", "auditor", "administrator"}
PRICING = {"borrower", "integration", "underwriter", "risk_officer", "operations"}
AUTHENTICATED = set(ROLES) - {"anonymous"}


def rule(allow: set[str], hidden: set[str] = frozenset()) -> dict[str, str]:  # type: ignore[assignment]
    """Every role's expected outcome: allow, hidden (404) or deny (401/403)."""
    return {r: "allow" if r in allow else "hidden" if r in hidden else "deny" for r in ROLES}


EXPECTED: dict[tuple[str, str], dict[str, str]] = {
    ("GET", "/products"): rule(AUTHENTICATED),
    ("POST", "/quotes"): rule(PRICING),
    ("POST", "/apr"): rule(PRICING),
    ("POST", "/loans"): rule({"underwriter", "operations"}),
    ("GET", "/loans/{loan_id}"): rule(LOAN_READERS | {"borrower"},
                                      hidden={"integration", "administrator"}),
    ("GET", "/loans/{loan_id}/payoff"): rule(LOAN_READERS | {"borrower"},
                                             hidden={"integration", "administrator"}),
    ("POST", "/loans/{loan_id}/payments"): rule({"collector", "operations"}),
    ("GET", "/me/loans"): rule({"borrower"}),
    ("POST", "/eod"): rule({"finance", "operations"}),
    ("GET", "/status"): rule({"risk_officer", "finance", "operations", "auditor",
                              "administrator"}),
    ("GET", "/reminders/report"): rule(set(STAFF)),
    ("POST", "/reminders/plan"): rule(set(STAFF)),
    ("GET", "/auth/me"): rule(AUTHENTICATED),
    ("POST", "/control/actions"): rule(PROPOSERS),
    ("GET", "/control/actions"): rule(CONTROL_READERS),
    ("GET", "/control/actions/{action_id}"): rule(CONTROL_READERS,
                                                  hidden={"collector", "operations"}),
    ("POST", "/control/actions/{action_id}/approve"): rule({"risk_officer"}),
    ("POST", "/control/actions/{action_id}/reject"): rule({"risk_officer"}),
    ("GET", "/audit/records"): rule({"auditor"}),
    ("GET", "/audit/report"): rule({"auditor"}),
    ("GET", "/borrowers/{borrower_id}"): rule(
        {"underwriter", "risk_officer", "collector", "operations", "auditor", "borrower"},
        hidden={"finance", "administrator", "integration"}),
    ("PUT", "/borrowers/{borrower_id}/personal-data"): rule({"underwriter"}),
    ("GET", "/payments/{payment_id}/receipt"): rule(
        {"collector", "finance", "operations", "auditor", "borrower"},
        hidden={"integration", "underwriter", "risk_officer", "administrator"}),
    ("GET", "/ledger/verify"): rule({"finance", "auditor"}),
    ("GET", "/ledger/proofs/{entry_id}"): rule({"finance", "auditor"}),
    # credit decisions (decision_routes.py): any caller may apply; the referral queue needs
    # loans.book; a promotion proposal needs control.propose. No referral exists here, so
    # the callers allowed through reach the look-up (404); an unknown model is a 422.
    ("POST", "/applications"): rule(AUTHENTICATED),
    ("GET", "/referrals"): rule({"underwriter", "operations"}),
    ("POST", "/referrals/{referral_id}/decision"): rule(
        set(), hidden={"underwriter", "operations"}),
    ("POST", "/models/promotions"): rule(PROPOSERS),
    # flexible repayment (repayment_routes.py): plans for any caller; a hardship request
    # only from the borrower; previews and the hardship queue need loans.read; a submission
    # also control.propose (the maker); the matrix uses an unknown relief event, so callers
    # allowed through reach the look-up (404)
    ("POST", "/plans"): rule(AUTHENTICATED),
    ("POST", "/loans/{loan_id}/hardship"): rule({"borrower"}),
    ("GET", "/hardship-requests"): rule(LOAN_READERS),
    ("POST", "/loans/{loan_id}/restructure/preview"): rule(LOAN_READERS),
    ("POST", "/loans/{loan_id}/restructure"): rule(LOAN_READERS & PROPOSERS),
    ("POST", "/relief/{event_id}/accept"): rule(set(), hidden=AUTHENTICATED),
    ("GET", "/relief/{event_id}/report"): rule(set(), hidden=LOAN_READERS),
    ("GET", "/loans/{loan_id}/credit-reporting"): rule(LOAN_READERS),
    # ends the caller's session; an API key has no session (403)
    ("POST", "/auth/logout"): rule(AUTHENTICATED - {"integration"}),
}
# routes open to anyone, each protected another way (tested in test_auth_bad_input.py)
PUBLIC = {
    ("POST", "/auth/login"), ("POST", "/auth/otp/request"), ("POST", "/auth/otp/verify"),
    ("POST", "/reminders/receipts/{provider}"),
}
FRAMEWORK = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def app_routes(world: World) -> set[tuple[str, str]]:
    """Every (method, path) the application serves, framework pages aside."""
    out: set[tuple[str, str]] = set()
    pending = list(world.client.app.routes)  # type: ignore[attr-defined]
    while pending:
        route = pending.pop()
        nested = getattr(route, "original_router", None)  # FastAPI's included routers
        if nested is not None:
            pending.extend(nested.routes)
        elif isinstance(route, APIRoute) and route.path not in FRAMEWORK:
            out |= {(m, route.path) for m in route.methods - {"HEAD", "OPTIONS"}}
    return out


def request_for(world: World, key: tuple[str, str]) -> tuple[str, str, dict[str, Any]]:
    """A well-formed request for a route (own records for the borrower)."""
    method, path = key
    action_id = _fresh_action(world) if path.startswith("/control/actions/{") else 0
    path = path.format(loan_id=world.loan_id, borrower_id=world.borrower_id,
                       payment_id=world.payment_id, entry_id=1, action_id=action_id,
                       referral_id=999_999, event_id=999_999)
    bodies: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
        ("POST", "/quotes"): lambda: {"json": {"product": "cn-bullet", "amount": "500.00",
                                               "term": "14d"}},
        ("POST", "/apr"): lambda: {"json": {"cashflows": [
            {"date": "2026-01-01", "amount": "-100.00"},
            {"date": "2026-02-01", "amount": "101.00"}]}},
        ("POST", "/loans"): lambda: {"json": {"borrower": "carol", "product": "cn-bullet",
                                              "amount": "300.00", "term": "14d"}},
        ("POST", "/loans/{loan_id}/payments"): lambda: {
            "json": {"amount": "1.00"}, "headers": {"Idempotency-Key": _key()}},
        ("POST", "/eod"): lambda: {"json": {"date": "2026-03-01"}},
        ("POST", "/reminders/plan"): lambda: {"json": {"date": "2026-03-02"}},
        ("POST", "/control/actions"): lambda: {"json": {
            "kind": "product.change", "target": "product:cn-bullet",
            "payload": {"changes": {"name": "Bullet"}}, "reason": "rename"}},
        ("POST", "/control/actions/{action_id}/approve"): lambda: {"json": {"reason": "ok"}},
        ("POST", "/control/actions/{action_id}/reject"): lambda: {"json": {"reason": "no"}},
        ("GET", "/audit/records"): lambda: {"params": {"from": "2000-01-01",
                                                       "to": "2100-01-01"}},
        ("GET", "/audit/report"): lambda: {"params": {"from": "2000-01-01",
                                                      "to": "2100-01-01"}},
        ("POST", "/applications"): lambda: {"json": {
            "applicant": {"age": 30, "monthly_income": "8000.00",
                          "monthly_obligations": "500.00", "employment": "employed",
                          "region": "CN-31", "borrower": "dora"},
            "requested": {"product": "cn-bullet", "amount": "300.00", "term": "30d"}}},
        ("POST", "/referrals/{referral_id}/decision"): lambda: {
            "json": {"decision": "decline", "note": "matrix"}},
        ("POST", "/models/promotions"): lambda: {
            "json": {"model_id": "no-such-model", "reason": "matrix"}},
        ("PUT", "/borrowers/{borrower_id}/personal-data"): lambda: {
            "json": {"address": "2 Short Street"}},
        ("POST", "/plans"): lambda: {"json": {"income": "8000.00", "obligations": "1000.00",
                                              "amount": "3000.00"}},
        ("POST", "/loans/{loan_id}/hardship"): lambda: {"json": {"reason": "matrix"}},
        ("POST", "/loans/{loan_id}/restructure/preview"): lambda: {"json": {
            "kind": "deferral", "count": 1}},
        ("POST", "/loans/{loan_id}/restructure"): lambda: {"json": {
            "kind": "deferral", "count": 1, "reason": "matrix"}},
        ("POST", "/relief/{event_id}/accept"): lambda: {"json": {"loan_id": world.loan_id}},
    }
    return method, path, bodies.get(key, dict)()


_counter = [0]


def _key() -> str:
    _counter[0] += 1
    return f"matrix-payment-{_counter[0]:06d}"


def _fresh_action(world: World) -> int:
    answer = world.client.post("/control/actions", headers=world.headers("maker"), json={
        "kind": "product.change", "target": "product:cn-bullet",
        "payload": {"changes": {"note": _key()}}, "reason": "matrix"})
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def outcome(status: int) -> str:
    """allow / deny / hidden from an HTTP status."""
    if status in (401, 403):
        return "deny"
    if status == 404:
        return "hidden"
    assert status < 500, status
    return "allow"


def test_every_route_has_a_row(world: World) -> None:
    served = app_routes(world)
    missing = served - set(EXPECTED) - PUBLIC
    assert not missing, (f"routes without an authorisation row: {sorted(missing)}; add each "
                         "to EXPECTED (role → allow/deny/hidden) in tests/e2e/test_authz_matrix.py "
                         "and a request body to request_for()")
    assert not (set(EXPECTED) | PUBLIC) - served, "rows for routes that no longer exist"


def _headers(world: World, role: str, key: tuple[str, str]) -> dict[str, str]:
    """The role's header; logging out uses a fresh session so the shared ones live on."""
    if key != ("POST", "/auth/logout") or role in ("anonymous", "integration"):
        return world.headers(role)
    token = otp_login(world.client, world.sms, "13812345678") if role == "borrower" else \
        login(world.client, f"{role}-user")
    return {"Authorization": f"Bearer {token}"}


def _mismatches(world: World, keys: list[tuple[str, str]]) -> list[str]:
    mismatches = []
    for key in keys:
        for role in ROLES:
            method, path, extra = request_for(world, key)
            headers = {**_headers(world, role, key), **extra.pop("headers", {})}
            answer = world.client.request(method, path, headers=headers, **extra)
            got, want = outcome(answer.status_code), EXPECTED[key][role]
            if got != want:
                mismatches.append(f"{method} {path} as {role}: {answer.status_code} "
                                  f"({got}), expected {want}: {answer.text[:120]}")
    return mismatches


def test_authorisation_matrix(world: World) -> None:
    keys = sorted(EXPECTED)
    mismatches = _mismatches(world, keys)
    assert not mismatches, "\n".join(mismatches)


def test_borrower_cannot_read_another_borrowers_records_by_guessing_ids(
        tmp_path: Path) -> None:
    world = build_world(tmp_path)
    try:
        headers = world.headers("borrower")
        for loan_id in range(1, 20):
            for path in (f"/loans/{loan_id}", f"/loans/{loan_id}/payoff"):
                answer = world.client.get(path, headers=headers)
                if loan_id == world.loan_id:
                    assert answer.status_code == 200
                else:
                    assert answer.status_code == 404, path
                    assert set(answer.json()) == {"detail"}
                    assert "bob" not in answer.text and "80" not in answer.text
        other = [f"/borrowers/{world.other_borrower_id}",
                 f"/payments/{world.other_payment_id}/receipt"]
        for path in other:
            answer = world.client.get(path, headers=headers)
            assert answer.status_code == 404 and set(answer.json()) == {"detail"}
            assert "Bob" not in answer.text and "1398" not in answer.text
        mine = world.client.get("/me/loans", headers=headers).json()
        assert [loan["loan_id"] for loan in mine] == [world.loan_id]
    finally:
        world.container.engine.dispose()
