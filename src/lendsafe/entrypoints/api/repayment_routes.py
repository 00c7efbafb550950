"""Flexible repayment over HTTP: personalised plans, "I need help paying" requests,
restructuring previews (``loans.read``) and submissions (``loans.read`` and
``control.propose``: the caller is the maker), relief acceptance (the borrower, or staff
who may read the loan) and reports (``loans.read``).

Money is a decimal string in major units; refusals are 422 with the problems.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from lendsafe.services.access import Forbidden, Principal, require, require_loan_access
from lendsafe.services.plans import offer_plans
from lendsafe.services.relief import ReliefService
from lendsafe.services.restructuring import RestructuringService, parse_request

Money = Annotated[str, Field(pattern=r"^\d{1,15}(\.\d{1,4})?$", examples=["1000.00"])]


class Strict(BaseModel):
    """Request bodies refuse unknown fields."""

    model_config = ConfigDict(extra="forbid")


class PlansRequest(Strict):
    income: Money
    obligations: Money = "0"
    amount: Money
    product: str | None = None
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")


class HardshipRequest(Strict):
    reason: str = Field(min_length=1, max_length=2000)


class ChangeBody(Strict):
    kind: str
    count: int = Field(default=0, ge=0, le=120)
    days: int = Field(default=0, ge=0, le=366)
    fee: Money = "0"
    amount: Money | None = None
    annual_rate: str | None = Field(default=None, pattern=r"^\d(\.\d{1,8})?$")
    first_due: date | None = None
    frequency: str | None = None
    holiday_interest: str | None = None
    reason: str = Field(default="", max_length=2000)


class AcceptRelief(Strict):
    loan_id: int


def repayment_router(principal: Callable[..., Principal], container: Any) -> APIRouter:
    """The routes; the restructuring approval handler is registered on the control
    services at once so that approvals work before any restructuring route is called."""
    router = APIRouter(tags=["flexible repayment"])
    auth = Depends(principal)
    lending = container.lending
    changes = RestructuringService(lending, security=container.security)
    relief = ReliefService(lending)

    @router.post("/plans")
    def plans(body: PlansRequest, caller: Principal = auth) -> dict[str, Any]:
        from lendsafe.domain.money import currency, parse_amount

        cur = currency(body.currency)
        return offer_plans(container.catalogue, parse_amount(body.income, cur),
                           parse_amount(body.obligations, cur), parse_amount(body.amount, cur),
                           lending.open_date(), cur.code, body.product)

    @router.post("/loans/{loan_id}/hardship", status_code=201)
    def hardship(loan_id: int, body: HardshipRequest, caller: Principal = auth) -> dict[str, Any]:
        if caller.borrower_id is None:
            raise Forbidden("a hardship request comes from the borrower")
        require_loan_access(caller, lending.loan_view(loan_id)["borrower_id"])
        return changes.request_help(loan_id, caller.borrower_id, body.reason, caller.subject)

    @router.get("/hardship-requests")
    def hardship_list(caller: Principal = auth,
                      status: str | None = "open") -> list[dict[str, Any]]:
        require(caller, "loans.read")
        return changes.hardship_requests(status)

    def request_of(loan_id: int, body: ChangeBody) -> Any:
        code = lending.loan_view(loan_id)["currency"]
        return parse_request(body.model_dump(exclude={"reason"}), code)

    @router.post("/loans/{loan_id}/restructure/preview")
    def preview(loan_id: int, body: ChangeBody, caller: Principal = auth) -> dict[str, Any]:
        require(caller, "loans.read")
        return changes.preview(loan_id, request_of(loan_id, body))

    @router.post("/loans/{loan_id}/restructure", status_code=201)
    def submit(loan_id: int, body: ChangeBody, caller: Principal = auth) -> dict[str, Any]:
        require(caller, "loans.read")
        require(caller, "control.propose")
        return changes.submit(loan_id, request_of(loan_id, body), caller.subject, body.reason,
                              caller)

    @router.post("/relief/{event_id}/accept")
    def accept(event_id: int, body: AcceptRelief, caller: Principal = auth) -> dict[str, Any]:
        require_loan_access(caller, lending.loan_view(body.loan_id)["borrower_id"])
        return relief.accept(event_id, body.loan_id, caller.subject)

    @router.get("/loans/{loan_id}/credit-reporting")
    def credit_reporting(loan_id: int, caller: Principal = auth) -> dict[str, Any]:
        """The loan's credit-reporting flags and whether a negative record may be reported."""
        from lendsafe.services.credit_reporting import reporting_gate

        require(caller, "loans.read")
        with lending.engine.connect() as connection:
            return reporting_gate(connection, loan_id, lending.open_date(connection))

    @router.get("/relief/{event_id}/report")
    def report(event_id: int, caller: Principal = auth) -> dict[str, Any]:
        require(caller, "loans.read")
        return relief.report(event_id)

    return router
