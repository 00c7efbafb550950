"""Control routes: maker-checker actions, audit records and report, borrowers' personal
data (masked by role), payment receipts with inclusion proofs, ledger verification."""


from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from lendsafe.adapters.db import tables as t
from lendsafe.services.access import Principal, require
from lendsafe.services.audit import records


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProposeRequest(_Strict):
    kind: str = Field(min_length=1, max_length=64)
    target: str = Field(min_length=1, max_length=128)
    payload: dict[str, Any] = Field(default_factory=dict)
    reason: str = Field(min_length=1, max_length=2000)


class DecisionRequest(_Strict):
    reason: str = Field(default="", max_length=2000)


class PersonalData(_Strict):
    name: str | None = Field(default=None, max_length=200)
    national_id: str | None = Field(default=None, max_length=64)
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9 ()-]{6,24}$")
    address: str | None = Field(default=None, max_length=500)
    reason: str | None = Field(default=None, max_length=500)


def _ledger_call(action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    from lendsafe.services.ledger import LedgerError

    try:
        return action()
    except LedgerError as error:
        raise LookupError(str(error)) from None


def control_router(principal: Callable[..., Principal]) -> APIRouter:
    """Maker-checker, audit, personal data, receipts and ledger routes."""
    router = APIRouter(tags=["control"])
    Caller = Annotated[Principal, Depends(principal)]
    _action_routes(router, Caller)
    _audit_routes(router, Caller)
    _data_routes(router, Caller)
    return router


def _security(request: Request) -> Any:
    return request.app.state.container.security


def _action_routes(router: APIRouter, Caller: Any) -> None:
    security = _security

    @router.post("/control/actions", status_code=201)
    def propose(body: ProposeRequest, request: Request, caller: Caller) -> dict[str, Any]:
        result: dict[str, Any] = security(request).propose(caller, body.kind, body.target,
                                                           body.payload, body.reason)
        return result

    @router.get("/control/actions")
    def actions(request: Request, caller: Caller, status: str | None = "pending"
                ) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = security(request).list_actions(caller, status)
        return result

    @router.get("/control/actions/{action_id}")
    def action(action_id: int, request: Request, caller: Caller) -> dict[str, Any]:
        result: dict[str, Any] = security(request).show(action_id, caller)
        return result

    @router.post("/control/actions/{action_id}/approve")
    def approve(action_id: int, body: DecisionRequest, request: Request, caller: Caller
                ) -> dict[str, Any]:
        result: dict[str, Any] = security(request).decide(caller, action_id, True, body.reason)
        return result

    @router.post("/control/actions/{action_id}/reject")
    def reject(action_id: int, body: DecisionRequest, request: Request, caller: Caller
               ) -> dict[str, Any]:
        result: dict[str, Any] = security(request).decide(caller, action_id, False, body.reason)
        return result


def _audit_routes(router: APIRouter, Caller: Any) -> None:
    From = Annotated[date, Query(alias="from")]
    To = Annotated[date, Query(alias="to")]

    @router.get("/audit/records")
    def audit_records(request: Request, caller: Caller, start: From, end: To,
                      action: str | None = None) -> list[dict[str, Any]]:
        require(caller, "audit.read")
        return records(request.app.state.container.engine, start, end, action)

    @router.get("/audit/report")
    def audit_report(request: Request, caller: Caller, start: From, end: To) -> dict[str, Any]:
        require(caller, "audit.read")
        result: dict[str, Any] = _security(request).audit_report(start, end)
        return result

    @router.get("/ledger/verify")
    def ledger_verify(request: Request, caller: Caller) -> dict[str, Any]:
        require(caller, "ledger.read")
        result: dict[str, Any] = request.app.state.container.ledger.verify().as_dict()
        return result


def _data_routes(router: APIRouter, Caller: Any) -> None:
    security = _security

    @router.get("/borrowers/{borrower_id}")
    def borrower(borrower_id: int, request: Request, caller: Caller,
                 reason: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = security(request).borrower(borrower_id, caller, reason)
        return result

    @router.put("/borrowers/{borrower_id}/personal-data", status_code=204)
    def personal_data(borrower_id: int, body: PersonalData, request: Request,
                      caller: Caller) -> None:
        fields = {k: v for k, v in body.model_dump().items() if k != "reason" and v}
        security(request).set_pii(borrower_id, fields, caller, body.reason)

    @router.get("/payments/{payment_id}/receipt")
    def receipt(payment_id: int, request: Request, caller: Caller) -> dict[str, Any]:
        container = request.app.state.container
        if not caller.can("receipts.read"):
            with container.engine.connect() as connection:
                owner = connection.execute(select(t.loans.c.borrower_id).join(
                    t.payments, t.payments.c.loan_id == t.loans.c.id).where(
                    t.payments.c.id == payment_id)).scalar()
            if not (caller.can("receipts.read.own") and owner is not None
                    and owner == caller.borrower_id):
                raise LookupError("payment not found")
        return _ledger_call(lambda: container.ledger.receipt(payment_id))

    @router.get("/ledger/proofs/{entry_id}")
    def ledger_proof(entry_id: int, request: Request, caller: Caller,
                     kind: Annotated[str, Query(pattern="^(journal|audit)$")] = "journal"
                     ) -> dict[str, Any]:
        require(caller, "ledger.read")
        ledger = request.app.state.container.ledger
        return _ledger_call(lambda: ledger.proof(entry_id, kind))
