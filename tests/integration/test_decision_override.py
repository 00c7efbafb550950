"""Decision and limit overrides under maker-checker: the proposal changes nothing, the
maker cannot approve it, approval appends the overriding decision (the model's stays in the
log) and closes the referral, bad payloads are refused by name, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from lendsafe.adapters.db import decision_tables as dt
from lendsafe.adapters.db import tables as t
from lendsafe.adapters.ml.registry import ModelRegistry
from lendsafe.bootstrap import Container, build
from lendsafe.config import Settings
from lendsafe.domain.lending.product import parse_term
from lendsafe.domain.problems import Refused
from lendsafe.services.access import Forbidden
from lendsafe.services.decision_models import ModelBook
from tests.integration.test_control_maker_checker import staff
from tests.integration.test_decision_service import application


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A model folder holding the built-in scorecard (trained once per module)."""
    folder = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LENDSAFE_MODELS_DIR", str(folder))
        ModelBook(ModelRegistry(folder)).builtin_model_id()
        yield folder


@pytest.fixture
def container(models: Path, database_url: str, tmp_path: Path) -> Iterator[Container]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LENDSAFE_MODELS_DIR", str(models))
        built = build(Settings.from_env({"LENDSAFE_DATABASE_URL": database_url,
                                         "LENDSAFE_DATA_DIR": str(tmp_path)}))
        built.lending.initialise(date(2026, 3, 2))
        yield built
        built.engine.dispose()


def _log(container: Container, application_id: str) -> list[tuple[str, int, str]]:
    log = dt.decision_log.c
    with container.engine.connect() as connection:
        return [(r.decision, int(r.limit_minor), r.decided_by) for r in connection.execute(
            select(log.decision, log.limit_minor, log.decided_by).where(
                log.application_id == application_id).order_by(log.id))]


def test_an_override_needs_a_second_person_and_keeps_the_model_decision(
        container: Container) -> None:
    decided = container.decisions.decide(application(
        requested__amount="2000.00", applicant__age=17), actor="test")
    application_id = decided["application_id"]
    assert decided["decision"] == "decline"
    before = _log(container, application_id)
    maker, checker = staff("underwriter", name="uma"), staff("risk_officer", name="rita")
    security = container.security
    action = security.propose(maker, "decision.override", f"application:{application_id}",
                              {"decision": "approve", "limit_minor": 150_000}, "guarantor")
    assert action["will_change"]["after"] == {"decision": "approve", "limit_minor": 150_000,
                                          "decided_by": "override"}
    assert _log(container, application_id) == before  # a proposal changes nothing
    with pytest.raises(Forbidden, match="maker"):
        security.decide(maker, action["id"], approve=True)
    security.decide(checker, action["id"], approve=True)
    assert _log(container, application_id) == [*before, ("approve", 150_000, "override")]
    log = dt.decision_log.c
    with container.engine.connect() as connection:
        reasons = json.loads(connection.execute(select(log.reasons).where(
            log.application_id == application_id).order_by(log.id.desc()).limit(1)).scalar_one())
    assert reasons[0]["code"] == "decision.override" and "rita" in reasons[0]["text_en"]
    assert "批准" in reasons[0]["text_zh"]


@pytest.mark.parametrize(("payload", "code"), [
    ({"decision": "maybe", "limit_minor": 1}, "decision.override_decision"),
    ({"decision": "approve", "limit_minor": 0}, "decision.override_limit"),
    ({"decision": "approve", "limit_minor": 999_999_999}, "decision.override_limit"),
    ({"decision": "approve", "limit_minor": "100"}, "decision.override_limit"),
])
def test_bad_overrides_are_refused_by_name(container: Container, payload: dict[str, object],
                                           code: str) -> None:
    decided = container.decisions.decide(application(), actor="test")
    with pytest.raises(Refused) as refused:
        container.security.propose(staff("underwriter", name="uma"), "decision.override",
                                   f"application:{decided['application_id']}", payload, "why")
    assert code in {p.code for p in refused.value.problems}
    assert len(_log(container, decided["application_id"])) == 1


def test_a_loan_draws_on_an_approved_application_once_and_within_its_limit(
        container: Container) -> None:
    lending = container.lending
    approved = container.decisions.decide(application(), actor="test")
    assert approved["decision"] == "approve", approved["reasons"]
    application_id, limit = approved["application_id"], approved["limit"]
    limit_minor = int(limit.replace(".", "")) if isinstance(limit, str) else int(limit)
    with pytest.raises(Refused) as refused:  # every reason at once
        lending.book("bob", "cn-weekly", limit_minor + 100, parse_term("8w"),
                     application_id=application_id)
    assert {p.code for p in refused.value.problems} >= {
        "application.product", "application.borrower", "application.limit"}
    loan_id = lending.book("alice", "cn-bullet", limit_minor, parse_term("30d"),
                           application_id=application_id)
    with pytest.raises(Refused) as again:
        lending.book("alice", "cn-bullet", 100_00, parse_term("30d"),
                     application_id=application_id)
    assert [p.code for p in again.value.problems] == ["application.used"]
    declined = container.decisions.decide(application(applicant__age=17), actor="test")
    with pytest.raises(Refused) as no:
        lending.book("alice", "cn-bullet", 100_00, parse_term("30d"),
                     application_id=declined["application_id"])
    assert "application.not_approved" in {p.code for p in no.value.problems}
    with pytest.raises(Refused, match="no decided credit application"):
        lending.book("alice", "cn-bullet", 100_00, parse_term("30d"), application_id="nope")
    with container.engine.connect() as connection:
        linked = connection.execute(select(t.loans.c.application_id).where(
            t.loans.c.id == loan_id)).scalar_one()
    assert linked == application_id
