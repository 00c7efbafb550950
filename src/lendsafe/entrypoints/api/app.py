"""The HTTP API. Every route needs a key (``Authorization: Bearer …``); OpenAPI at /docs.

Money in and out is a decimal string in major units; rates are decimal strings; dates ISO.
Refusals come back as 422 with the problems (code, message, field, figures).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lendsafe.adapters.db.repository import NotFound
from lendsafe.bootstrap import Container, build
from lendsafe.domain.lending.apr import AprError, CashFlow, Method, UnitPeriod, annual_rate
from lendsafe.domain.lending.loan import ServicingError
from lendsafe.domain.lending.product import parse_term
from lendsafe.domain.money import MoneyError, currency, format_rate, parse_amount
from lendsafe.domain.problems import Refused
from lendsafe.entrypoints.api.auth_routes import auth_router
from lendsafe.entrypoints.api.control_routes import control_router
from lendsafe.entrypoints.api.decision_routes import decision_router
from lendsafe.entrypoints.api.reminder_routes import reminder_router
from lendsafe.entrypoints.api.repayment_routes import repayment_router
from lendsafe.entrypoints.api.startup import lifespan
from lendsafe.services.access import (
    Forbidden,
    Principal,
    Unauthenticated,
    authenticate,
    require,
    require_loan_access,
)
from lendsafe.services.lending import Conflict, quote_document

T = TypeVar("T")
Money = Annotated[str, Field(pattern=r"^-?\d{1,15}(\.\d{1,4})?$", examples=["1000.00"])]


class Strict(BaseModel):
    """Request bodies refuse unknown fields."""

    model_config = ConfigDict(extra="forbid")


class QuoteRequest(Strict):
    product: str
    amount: Money
    term: str = Field(pattern=r"^\d{1,4}[dwmDWM]$", examples=["14d", "12m"])
    start: date | None = None


class LoanRequest(Strict):
    borrower: str = Field(min_length=1, max_length=64)
    product: str
    amount: Money
    term: str = Field(pattern=r"^\d{1,4}[dwmDWM]$")
    region: str | None = Field(default=None, max_length=32)
    application_id: str | None = Field(default=None, min_length=1, max_length=64)


class PaymentRequest(Strict):
    amount: Money


class CashFlowItem(Strict):
    date: date
    amount: Money


class AprRequest(Strict):
    cashflows: list[CashFlowItem] = Field(min_length=2, max_length=2000)
    method: Method = Method.REG_Z
    unit_period: UnitPeriod | None = None
    currency: str = "USD"


class EodRequest(Strict):
    date: date


def principal(request: Request,
              authorization: Annotated[str | None, Header()] = None) -> Principal:
    """The caller behind ``Authorization: Bearer <key or session token>`` (401 otherwise)."""
    scheme, _, secret = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthenticated("send Authorization: Bearer <key>")
    container = request.app.state.container
    if container.security is not None:
        return container.security.resolve(secret.strip())  # type: ignore[no-any-return]
    return authenticate(container.engine, secret.strip())


Caller = Annotated[Principal, Depends(principal)]


def create_app(container: Container | None = None) -> FastAPI:
    """The application (``lendsafe serve`` builds it from the environment)."""
    container = container or build()
    app = FastAPI(title="lendsafe", version="0.1.0",
                  description="Loan engine: products, quotes, loans, payments, close of business.",
                  lifespan=lifespan(container))
    _install_errors(app)

    app.state.container = container
    _catalogue_routes(app, container)
    _loan_routes(app, container)
    _operations_routes(app, container)
    app.include_router(reminder_router(principal))
    app.include_router(repayment_router(principal, container))
    app.include_router(auth_router(principal))
    app.include_router(control_router(principal))
    app.include_router(decision_router(principal))
    return app


def _catalogue_routes(app: FastAPI, container: Container) -> None:
    lending = container.lending

    @app.get("/products")
    def products(caller: Caller) -> list[dict[str, Any]]:
        require(caller, "products.read")
        return lending.product_listing()

    @app.post("/quotes")
    def quote(body: QuoteRequest, caller: Caller) -> dict[str, Any]:
        require(caller, "quotes.create")
        product = container.catalogue.product(body.product)
        start = body.start or lending.open_date()
        result = lending.quote(product.id, parse_amount(body.amount, product.currency),
                               parse_term(body.term), start)
        return quote_document(result)

    @app.post("/apr")
    def apr(body: AprRequest, caller: Caller) -> dict[str, Any]:
        require(caller, "apr.compute")
        cur = currency(body.currency)
        flows = [CashFlow(i.date, parse_amount(i.amount, cur)) for i in body.cashflows]
        result = annual_rate(flows, body.method, body.unit_period)
        return {"annual_rate": format_rate(result.annual_rate, 6), "method": result.method.value,
                "unit_period": result.unit_period.value,
                "annual_rate_nominal": format_rate(result.annual_rate_nominal, 6),
                "annual_rate_compound": format_rate(result.annual_rate_compound, 6)}



def _loan_routes(app: FastAPI, container: Container) -> None:
    lending = container.lending

    @app.post("/loans", status_code=201)
    def book(body: LoanRequest, caller: Caller) -> dict[str, Any]:
        require(caller, "loans.book")
        product = container.catalogue.product(body.product)
        loan_id = lending.book(body.borrower, product.id, parse_amount(body.amount,
                               product.currency), parse_term(body.term), body.region,
                               actor=caller.subject, application_id=body.application_id)
        return lending.loan_view(loan_id)

    def visible_loan(loan_id: int, caller: Principal) -> dict[str, Any]:
        document = lending.loan_view(loan_id)
        require_loan_access(caller, document["borrower_id"])
        return document

    @app.get("/loans/{loan_id}")
    def loan(loan_id: int, caller: Caller) -> dict[str, Any]:
        return visible_loan(loan_id, caller)

    @app.get("/loans/{loan_id}/payoff")
    def payoff(loan_id: int, caller: Caller, on: date | None = None) -> dict[str, Any]:
        visible_loan(loan_id, caller)
        return lending.payoff(loan_id, on)

    @app.post("/loans/{loan_id}/payments", status_code=201)
    def pay(loan_id: int, body: PaymentRequest, caller: Caller,
            idempotency_key: Annotated[str, Header(min_length=8, max_length=128)]
            ) -> dict[str, Any]:
        require(caller, "payments.post")
        document = lending.loan_view(loan_id)
        amount = parse_amount(body.amount, currency(document["currency"]))
        return lending.pay(loan_id, amount, idempotency_key, actor=caller.subject)

    @app.get("/me/loans")
    def my_loans(caller: Caller) -> list[dict[str, Any]]:
        if caller.borrower_id is None or not caller.can("loans.read.own"):
            raise Forbidden("only a borrower has loans of their own")
        return [lending.loan_view(i) for i in lending.loan_ids_of(caller.borrower_id)]



def _operations_routes(app: FastAPI, container: Container) -> None:
    lending = container.lending

    @app.post("/eod")
    def eod(body: EodRequest, caller: Caller) -> dict[str, Any]:
        require(caller, "eod.run")
        closed = lending.close_business(body.date, actor=caller.subject)
        return {"closed": [{"business_date": s.business_date.isoformat(), "loans": s.loans,
                            "journal_entries": s.journal_entries} for s in closed],
                "open_business_date": lending.open_date().isoformat()}

    @app.get("/status")
    def status(caller: Caller) -> dict[str, Any]:
        require(caller, "status.read")
        return lending.status()


def _problem_response(status: int, detail: Any) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail})


def _install_errors(app: FastAPI) -> None:
    handlers: dict[type[Exception], Callable[[Exception], JSONResponse]] = {
        Unauthenticated: lambda e: JSONResponse(
            status_code=401, content={"detail": "authentication required"},
            headers={"WWW-Authenticate": "Bearer"}),
        Forbidden: lambda e: _problem_response(403, str(e)),
        LookupError: lambda e: _problem_response(404, str(e)),
        NotFound: lambda e: _problem_response(404, str(e)),
        Conflict: lambda e: _problem_response(409, str(e)),
        Refused: lambda e: _problem_response(
            422, [p.as_dict() for p in e.problems]),  # type: ignore[attr-defined]
        ServicingError: lambda e: _problem_response(422, str(e)),
        MoneyError: lambda e: _problem_response(422, str(e)),
        AprError: lambda e: _problem_response(422, str(e)),
        ValueError: lambda e: _problem_response(422, str(e)),
    }
    for kind, handler in handlers.items():
        app.add_exception_handler(kind, _adapt(handler))


def _adapt(handler: Callable[[Exception], JSONResponse]) -> Callable[[Request, Exception],
                                                                    JSONResponse]:
    def handle(_request: Request, error: Exception) -> JSONResponse:
        return handler(error)

    return handle

