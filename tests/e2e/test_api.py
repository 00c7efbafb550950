"""The HTTP API end to end: authentication, borrower scoping, payments, bad input."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from lendsafe.adapters.db import tables as t
from lendsafe.bootstrap import Container, build
from lendsafe.config import Settings
from lendsafe.entrypoints.api.app import create_app
from lendsafe.services.access import create_api_key


@pytest.fixture
def container(tmp_path: Path) -> Iterator[Container]:
    settings = Settings.from_env({"LENDSAFE_DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}",
                                  "LENDSAFE_DATA_DIR": str(tmp_path)})
    container = build(settings)
    container.lending.initialise(date(2026, 3, 2))
    yield container
    container.engine.dispose()


@pytest.fixture
def client(container: Container) -> TestClient:
    return TestClient(create_app(container))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_every_route_needs_credentials(client: TestClient) -> None:
    for method, path in [("get", "/products"), ("post", "/quotes"), ("get", "/loans/1"),
                         ("post", "/loans"), ("get", "/status"), ("post", "/eod"),
                         ("get", "/me/loans"), ("post", "/apr")]:
        response = client.request(method, path)
        assert response.status_code == 401, (method, path)
        response = client.request(method, path, headers=bearer("lsk_not-a-real-key"))
        assert response.status_code == 401, (method, path)
        assert response.json() == {"detail": "authentication required"}  # nothing else leaks


def test_borrower_sees_only_own_loans(container: Container, client: TestClient) -> None:
    staff = bearer(create_api_key(container.engine, "operations"))
    mine = client.post("/loans", headers=staff, json={
        "borrower": "alice", "product": "cn-bullet", "amount": "1000.00", "term": "14d"})
    theirs = client.post("/loans", headers=staff, json={
        "borrower": "bob", "product": "cn-bullet", "amount": "2000.00", "term": "14d"})
    assert mine.status_code == theirs.status_code == 201
    alice = bearer(create_api_key(container.engine, "borrower", "alice"))
    assert client.get(f"/loans/{mine.json()['loan_id']}", headers=alice).status_code == 200
    other = client.get(f"/loans/{theirs.json()['loan_id']}", headers=alice)
    assert other.status_code == 404 and "2000" not in other.text
    assert client.get("/loans/999", headers=alice).status_code == 404
    assert [loan["loan_id"] for loan in client.get("/me/loans", headers=alice).json()] == [
        mine.json()["loan_id"]]
    assert client.post("/loans", headers=alice, json={
        "borrower": "alice", "product": "cn-bullet", "amount": "1000.00", "term": "14d"},
    ).status_code == 403
    assert client.get("/status", headers=alice).status_code == 403


def test_payment_idempotency_over_http(container: Container, client: TestClient) -> None:
    staff = bearer(create_api_key(container.engine, "operations"))
    loan = client.post("/loans", headers=staff, json={
        "borrower": "carol", "product": "cn-bullet", "amount": "1000.00", "term": "14d"}).json()
    headers = {**staff, "Idempotency-Key": "pay-0001-abc"}
    first = client.post(f"/loans/{loan['loan_id']}/payments", headers=headers,
                        json={"amount": "300.00"})
    again = client.post(f"/loans/{loan['loan_id']}/payments", headers=headers,
                        json={"amount": "300.00"})
    assert first.status_code == again.status_code == 201
    assert first.json()["payment_id"] == again.json()["payment_id"]
    assert again.json()["replayed"] is True
    clash = client.post(f"/loans/{loan['loan_id']}/payments", headers=headers,
                        json={"amount": "301.00"})
    assert clash.status_code == 409
    payoff = client.get(f"/loans/{loan['loan_id']}/payoff", headers=staff).json()
    assert payoff["principal"] == "700.00"


@pytest.mark.parametrize(("path", "body", "fragment"), [
    ("/loans", {"borrower": "d", "product": "cn-bullet", "amount": "-5.00", "term": "14d"},
     "positive"),
    ("/loans", {"borrower": "d", "product": "cn-bullet", "amount": "0", "term": "14d"},
     "positive"),
    ("/loans", {"borrower": "d", "product": "cn-bullet", "amount": "50.00", "term": "14d"},
     "outside"),
    ("/loans", {"borrower": "d", "product": "nope", "amount": "100.00", "term": "14d"},
     "unknown product"),
    ("/loans", {"borrower": "d", "product": "cn-bullet", "amount": "100.00", "term": "400d"},
     "outside"),
    ("/loans", {"borrower": "d", "product": "cn-bullet", "amount": 100.5, "term": "14d"},
     "string"),
    ("/loans", {"borrower": "d", "product": "cn-bullet", "amount": "100.00", "term": "14d",
                "extra": 1}, "extra"),
    ("/quotes", {"product": "cn-bullet", "amount": "1e5", "term": "14d"}, "pattern"),
    ("/eod", {"date": "2026-02-30"}, "date"),
])
def test_bad_input_is_a_clear_4xx_and_writes_nothing(
    container: Container, client: TestClient, path: str, body: dict[str, object], fragment: str
) -> None:
    staff = bearer(create_api_key(container.engine, "operations"))
    response = client.post(path, headers=staff, json=body)
    assert response.status_code == 422, response.text
    assert fragment in response.text
    with container.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(t.loans)).scalar() == 0
        assert connection.execute(select(func.count()).select_from(t.journal)).scalar() == 0


def test_malformed_json_and_payment_before_business(container: Container,
                                                    client: TestClient) -> None:
    staff = bearer(create_api_key(container.engine, "operations"))
    response = client.post("/loans", headers={**staff, "Content-Type": "application/json"},
                           content=b"{nope")
    assert response.status_code == 422
    loan = client.post("/loans", headers=staff, json={
        "borrower": "e", "product": "cn-bullet", "amount": "1000.00", "term": "14d"}).json()
    negative = client.post(f"/loans/{loan['loan_id']}/payments",
                           headers={**staff, "Idempotency-Key": "neg-00001"},
                           json={"amount": "-1.00"})
    assert negative.status_code == 422 and "positive" in negative.text
    missing_key = client.post(f"/loans/{loan['loan_id']}/payments", headers=staff,
                              json={"amount": "1.00"})
    assert missing_key.status_code == 422
    with container.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(t.payments)).scalar() == 0
