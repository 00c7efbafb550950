"""Credit decisions: validate, score (champion and challenger), decide, log, refer.

One application is one transaction: the application row (identity only as hashes), the
decision log row (inputs hash, decision, reasons, model and policy versions, the challenger's
score) and, for ``refer``, the manual-review queue entry commit together or not at all.
Underwriters decide referrals (logged as a second decision row); changing the champion or the
challenger is the sensitive action ``model.promote`` (maker-checker in
:mod:`lendsafe.services.control`).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from lendsafe.adapters.db import decision_tables as dt
from lendsafe.adapters.db import tables as t
from lendsafe.adapters.db.engine import reading
from lendsafe.domain.ledger.canonical import canonical_json
from lendsafe.domain.lending.loan import LoanStatus
from lendsafe.domain.lending.product import LoanType
from lendsafe.domain.origination.application import (
    Applicant,
    BorrowerFacts,
    Case,
    Market,
    Request,
)
from lendsafe.domain.origination.decision import Decision, decide
from lendsafe.domain.origination.offers import prime
from lendsafe.domain.origination.policy import Policy, load_policy
from lendsafe.domain.origination.pricing import Pricing
from lendsafe.domain.problems import Problem, Refused
from lendsafe.services.catalogue import Catalogue
from lendsafe.services.decision_documents import decision_document
from lendsafe.services.decision_input import (
    ParsedApplication,
    identity_hash,
    model_row,
    parse_application,
)
from lendsafe.services.decision_models import ModelBook, ModelScore, challenger_bucket
from lendsafe.services.lending import Conflict, LendingService, catalogue_version


def load_default_policy(path: Path | None = None) -> Policy:
    """The packaged ``policy.toml`` (or ``path``)."""
    raw = path.read_bytes() if path else \
        resources.files("lendsafe.data").joinpath("policy.toml").read_bytes()
    return load_policy(tomllib.loads(raw.decode("utf-8")), raw)


@dataclass(frozen=True)
class _Record:
    """What one decision writes, worked out before its transaction begins."""

    parsed: ParsedApplication
    application_id: str
    row: dict[str, Any]
    decision: Decision
    scores: tuple[ModelScore, ModelScore | None, ModelScore]
    on: date
    now: datetime
    inputs: str  # canonical JSON of the stored inputs


@dataclass
class DecisionService:
    """Decisions over one database, one catalogue, one policy and the model registry."""

    engine: Engine
    catalogue: Catalogue
    lending: LendingService
    policy: Policy
    models: ModelBook

    def __post_init__(self) -> None:
        self.calendars = {p.id: self.catalogue.calendar(p)
                          for p in self.catalogue.products.values()}
        self.pricing = Pricing()  # quote facts shared by every decision on this catalogue
        self._catalogue_seen: int | None = None  # catalogue_state version the catalogue holds
        self.challenger_share = self.policy.rate("challenger_share")

    # -- start-up ----------------------------------------------------------------------
    def prime(self) -> int:
        """Warm a server process before its first request: load the models in their roles
        and price what every decision's limit search starts with (see
        :func:`~lendsafe.domain.origination.offers.prime`), then decide one synthetic
        applicant per product (nothing is written). Returns the offers primed; 0 when there is
        nothing to prime yet (no business date, or no champion and no built-in scorecard
        registered: nothing is trained here)."""
        try:
            with reading(self.engine).connect() as connection:
                self._follow_catalogue(connection)
                roles = self.models.roles(connection)
                on = self.lending.open_date(connection)
        except Refused:
            return 0
        if "champion" not in roles:  # assigned by the first decision; load it if registered
            builtin = self.models.registered_builtin()
            if builtin is None:
                return 0
            roles["champion"] = builtin
        for model_id in roles.values():
            self.models.load(model_id)
        market = Market(self.catalogue.products, self.catalogue.jurisdictions, self.calendars, on)
        primed = prime(self.policy, market, self.pricing)
        for product in self.catalogue.products.values():
            region = "CN-31" if product.jurisdiction == "CN" else f"{product.jurisdiction}-NY"
            applicant = Applicant(35, 10_000 * 10**product.currency.exponent, 0,
                                  "employed", region)
            request = Request(product.id, product.amount_min_minor, product.term_min,
                              product.currency)
            decision = decide(self.policy, market, Case(applicant, request, BorrowerFacts(),
                                                        Decimal("0.02")), self.pricing)
            for item in decision.products:
                _ = item.reasons, item.available and item.offer.annual_rate_disclosed
        return primed

    # -- deciding ----------------------------------------------------------------------
    def decide(self, document: object, actor: str = "system",
               borrower_id: int | None = None) -> dict[str, Any]:
        """Decide one application (see the module docstring); refusals name the field.

        The facts are read in one short transaction, the decision and its answer are computed
        outside any transaction, and the rows it produced are written in a second one (on
        SQLite a transaction holds the database's write lock)."""
        parsed = parse_application(document, self.catalogue.products)
        with reading(self.engine).connect() as connection:
            self._follow_catalogue(connection)
            roles = self.models.roles(connection)
            on = self.lending.open_date(connection)
            facts = self._facts(connection, parsed, borrower_id)
        if "champion" not in roles:  # first use: the built-in scorecard
            roles["champion"] = self.models.ensure_champion(self.engine, self.lending.clock)
        row = self._model_row(parsed, list(roles.values()))
        application_id = parsed.body.application_id or uuid.uuid4().hex
        champion = self.models.score(roles["champion"], row)
        challenger = self.models.score(roles["challenger"], row) if "challenger" in roles else None
        used = challenger if challenger is not None and \
            challenger_bucket(application_id) < self.challenger_share else champion
        case = Case(parsed.applicant, parsed.request, facts, Decimal(f"{used.pd:.6f}"),
                    used.reasons)
        market = Market(self.catalogue.products, self.catalogue.jurisdictions, self.calendars, on)
        decision = decide(self.policy, market, case, self.pricing)
        scores = (champion, challenger, used)
        answer = self._answer(parsed, application_id, decision, scores, on)
        record = _Record(parsed, application_id, row, decision, scores, on,
                         self.lending.clock(), canonical_json(parsed.stored))
        try:
            with self.engine.begin() as connection:
                self._record(connection, record, answer)
        except IntegrityError:
            raise Conflict(f"application {application_id!r} was already decided; send a new "
                           "application_id for a new application") from None
        return answer

    def _answer(self, parsed: ParsedApplication, application_id: str, decision: Decision,
                scores: tuple[ModelScore, ModelScore | None, ModelScore],
                on: date) -> dict[str, Any]:
        _, challenger, used = scores
        document = decision_document(decision, parsed, application_id, used, on,
                                     self.policy.label)
        document["challenger"] = None if challenger is None else {
            "model_version": challenger.model_id, "score": round(challenger.score, 2),
            "pd": f"{challenger.pd:.6f}"}
        document["decided_by"] = "challenger" if used is challenger else "champion"
        return document

    def _follow_catalogue(self, connection: Connection) -> None:
        """Take in product and jurisdiction changes approved since this process last looked
        (in any process): one integer read per decision; the catalogue is re-read only when
        it moved, and the pricing caches forget what was priced under replaced rules."""
        version = catalogue_version(connection)
        if version != self._catalogue_seen:
            self.lending.refresh_catalogue(connection)
            self.calendars = {p.id: self.catalogue.calendar(p)
                              for p in self.catalogue.products.values()}
            self._catalogue_seen = version

    def _model_row(self, parsed: ParsedApplication, model_ids: list[str]) -> dict[str, Any]:
        row = model_row(parsed, self.policy.model_inputs)
        kinds = self.models.schema_kinds(model_ids)
        problems = []
        for name, value in row.items():
            kind = kinds.get(name)
            if kind == "numeric" and value is not None and (
                    isinstance(value, str | bool) or value != value):
                problems.append(Problem("input.characteristic", f"characteristics.{name}: "
                                        "must be a number", field=f"characteristics.{name}"))
            elif kind == "categorical" and value is not None and not isinstance(value, str):
                row[name] = str(value)
        if problems:
            raise Refused(problems)
        return {k: v for k, v in row.items() if k in kinds}

    def _record(self, connection: Connection, record: _Record, answer: dict[str, Any]) -> None:
        """The application, its decision log row and any referral: one transaction, executed
        as plain parameter sets against statements compiled once."""
        digest = hashlib.sha256(record.inputs.encode()).hexdigest()
        request, now = record.parsed.request, record.now
        connection.execute(_INSERT_APPLICATION, {
            "id": record.application_id, "received_at": now,
            "borrower_ref": record.parsed.body.applicant.borrower,
            "product_id": request.product, "currency": request.currency.code,
            "amount_minor": request.amount_minor, "term": str(request.term),
            "inputs": record.inputs, "inputs_sha256": digest})
        reasons = json.dumps(answer["reasons"], ensure_ascii=False)
        connection.execute(_INSERT_LOG, self._log_row(record, answer, reasons, digest))
        if record.decision.decision == "refer":
            result = connection.execute(dt.referrals.insert(), {
                "application_id": record.application_id, "status": "open",
                "created_at": now, "reasons": reasons})
            answer["referral_id"] = int(result.inserted_primary_key[0])  # type: ignore[index]

    def _log_row(self, record: _Record, answer: dict[str, Any], reasons: str,
                 digest: str) -> dict[str, Any]:
        champion, challenger, used = record.scores
        return {
            "application_id": record.application_id, "decided_at": record.now,
            "business_date": record.on.isoformat(), "decided_by": answer["decided_by"],
            "decision": record.decision.decision, "reasons": reasons,
            "inputs_sha256": digest, "pd": f"{used.pd:.6f}", "score": used.score,
            "limit_minor": record.decision.limit_minor,
            "annual_rate_offered": answer["annual_rate_offered"], "model_version": used.model_id,
            "challenger_version": challenger.model_id if challenger else None,
            "challenger_score": challenger.score if challenger else None,
            "challenger_pd": f"{challenger.pd:.6f}" if challenger else None,
            "champion_version": champion.model_id, "champion_score": champion.score,
            "policy_version": self.policy.label,
            "characteristics": json.dumps(record.row, sort_keys=True, default=str)}

    def _facts(self, connection: Connection, parsed: ParsedApplication,
               borrower_id: int | None) -> BorrowerFacts:
        blocked = self._blocklisted(connection, parsed.identity_hashes)
        if borrower_id is None and parsed.body.applicant.borrower:
            borrower_id = connection.execute(
                _BORROWER_BY_REF, {"b_ref": parsed.body.applicant.borrower}).scalar()
        if borrower_id is None:
            return BorrowerFacts(blocklisted=blocked)
        loans = connection.execute(_LOANS_OF_BORROWER, {"b_borrower": borrower_id}).all()
        open_ids = tuple(int(r.id) for r in loans if r.status != LoanStatus.CLOSED.value)
        bullets = tuple(int(r.id) for r in loans if r.status != LoanStatus.CLOSED.value
                        and r.type == LoanType.BULLET.value)
        charged = [r.charged_off_on for r in loans if r.charged_off_on is not None]
        return BorrowerFacts(open_ids, bullets, max(charged, default=None), blocked)

    @staticmethod
    def _blocklisted(connection: Connection, hashes: Mapping[str, str]) -> tuple[str, ...]:
        if not hashes:
            return ()
        found = connection.execute(select(dt.blocklist.c.kind).where(
            dt.blocklist.c.value_sha256.in_(list(hashes.values())))).scalars()
        return tuple(sorted(set(found)))

    # -- blocklist, referrals ----------------------------------------------------------
    def block(self, kind: str, value: str, reason: str) -> None:
        """Put an identity value on the blocklist (only its hash is kept)."""
        if kind not in ("national_id", "phone", "device_id"):
            raise Refused([Problem("blocklist.kind", "kind must be national_id, phone or "
                                   "device_id", field="kind")])
        with self.engine.begin() as connection:
            connection.execute(insert(dt.blocklist).values(
                kind=kind, value_sha256=identity_hash(kind, value), reason=reason,
                created_at=self.lending.clock()))

    def referrals(self, status: str | None = "open") -> list[dict[str, Any]]:
        """The manual-review queue (open referrals by default), oldest first."""
        query = select(dt.referrals, dt.applications.c.product_id, dt.applications.c.currency,
                       dt.applications.c.amount_minor, dt.applications.c.term).join(
            dt.applications, dt.applications.c.id == dt.referrals.c.application_id)
        if status:
            query = query.where(dt.referrals.c.status == status)
        with self.engine.connect() as connection:
            rows = connection.execute(query.order_by(dt.referrals.c.id).limit(500)).all()
        return [_referral_document(r) for r in rows]

    def decide_referral(self, referral_id: int, approve: bool, note: str,
                        actor: str) -> dict[str, Any]:
        """An underwriter approves or declines a referral (logged as a decision)."""
        if not note.strip():
            raise Refused([Problem("referral.note", "a note is required", field="note")])
        with self.engine.begin() as connection:
            row = connection.execute(select(dt.referrals).where(
                dt.referrals.c.id == referral_id)).first()
            if row is None:
                raise LookupError("referral not found")
            if row.status != "open":
                raise Conflict(f"referral {referral_id} was already {row.status}")
            self._log_underwriter(connection, row.application_id, approve, note, actor)
            connection.execute(update(dt.referrals).where(dt.referrals.c.id == referral_id)
                               .values(status="approved" if approve else "declined",
                                       decided_by=actor, decided_at=self.lending.clock(),
                                       note=note))
        return next(r for r in self.referrals(None) if r["referral_id"] == referral_id)

    def _log_underwriter(self, connection: Connection, application_id: str, approve: bool,
                         note: str, actor: str) -> None:
        first = connection.execute(select(dt.decision_log).where(
            dt.decision_log.c.application_id == application_id).order_by(
            dt.decision_log.c.id)).first()
        assert first is not None
        values = {k: v for k, v in first._mapping.items() if k != "id"}
        reasons = [*json.loads(first.reasons), {"code": "underwriter.note", "text_en": note,
                                                 "text_zh": note}]
        values.update(decided_at=self.lending.clock(), decided_by=f"underwriter:{actor}",
                      decision="approve" if approve else "decline",
                      reasons=json.dumps(reasons, ensure_ascii=False))
        connection.execute(insert(dt.decision_log).values(values))


# statements every decision runs, built once
_INSERT_APPLICATION = dt.applications.insert()
_INSERT_LOG = dt.decision_log.insert()
_BORROWER_BY_REF = select(t.borrowers.c.id).where(
    t.borrowers.c.external_ref == bindparam("b_ref"))
_LOANS_OF_BORROWER = select(
    t.loans.c.id, t.loans.c.type, t.loans.c.status, t.loans.c.charged_off_on).where(
    t.loans.c.borrower_id == bindparam("b_borrower")).order_by(t.loans.c.id)


def _referral_document(row: Any) -> dict[str, Any]:
    from lendsafe.domain.money import currency, format_amount

    return {
        "referral_id": row.id, "application_id": row.application_id, "status": row.status,
        "product": row.product_id,
        "amount": format_amount(row.amount_minor, currency(row.currency)),
        "currency": row.currency, "term": row.term, "reasons": json.loads(row.reasons),
        "created_at": _iso(row.created_at), "decided_by": row.decided_by,
        "decided_at": _iso(row.decided_at), "note": row.note,
    }


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
