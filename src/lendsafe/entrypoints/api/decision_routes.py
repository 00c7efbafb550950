"""HTTP routes of credit decisions: applications, the referral queue, model promotion.

``POST /applications`` takes the application JSON (see ``lendsafe.services.decision_input``)
and answers the decision; bad input is a 422 whose problems name the field, and nothing is
stored. A borrower caller is decided against their own loans. Referral and promotion routes
need staff permissions (``loans.book`` to work the queue, ``control.propose`` to propose a
promotion, which another person approves through the control routes).
"""

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lendsafe.services.access import Principal, require, require_staff
from lendsafe.services.decision_control import PROMOTE, promotion_payload

APPLICATION_EXAMPLE = {
    "applicant": {"age": 30, "monthly_income": "8000.00", "monthly_obligations": "500.00",
                  "employment": "employed", "region": "CN-31", "borrower": "alice"},
    "requested": {"product": "cn-bullet", "amount": "3000.00", "term": "30d"},
    "characteristics": {"status_of_existing_checking_account": "no checking account"},
}


class ReferralDecision(BaseModel):
    """An underwriter's decision on a referral."""

    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "decline"]
    note: str = Field(min_length=1, max_length=2000)


class PromotionRequest(BaseModel):
    """A proposal to put a model in a role."""

    model_config = ConfigDict(extra="forbid")
    model_id: str = Field(min_length=4, max_length=64)
    role: Literal["champion", "challenger"] = "champion"
    reason: str = Field(min_length=1, max_length=2000)


def decision_router(principal: Callable[..., Principal]) -> APIRouter:
    """The router; ``principal`` is the app's dependency resolving the caller."""
    router = APIRouter(tags=["decisions"])
    Caller = Annotated[Principal, Depends(principal)]

    @router.post("/applications", response_class=JSONResponse)
    async def apply(request: Request,
                    body: Annotated[Any, Body(examples=[APPLICATION_EXAMPLE])],
                    authorization: Annotated[str | None, Header()] = None) -> JSONResponse:
        # Decided on the event loop, not in the thread pool: a decision is ~1–2 ms of CPU
        # (the GIL serialises it anyway) and two thread hops per request (the caller and the
        # route) cost more than that under load. The answer is encoded once, as it is built
        # (plain JSON types only), without FastAPI's generic encoder walking it again. The
        # process was primed and its heap frozen at start-up (entrypoints/api/startup.py).
        caller = principal(request, authorization)
        decisions = request.app.state.container.decisions
        return JSONResponse(decisions.decide(body, actor=caller.subject,
                                             borrower_id=caller.borrower_id))

    @router.get("/referrals")
    def referrals(request: Request, caller: Caller,
                  status: str | None = "open") -> list[dict[str, Any]]:
        require_staff(caller)
        require(caller, "loans.book")
        return request.app.state.container.decisions.referrals(  # type: ignore[no-any-return]
            status or None)

    @router.post("/referrals/{referral_id}/decision")
    def decide_referral(request: Request, referral_id: int, body: ReferralDecision,
                        caller: Caller) -> dict[str, Any]:
        require_staff(caller)
        require(caller, "loans.book")
        return request.app.state.container.decisions.decide_referral(  # type: ignore[no-any-return]
            referral_id, body.decision == "approve", body.note, caller.subject)

    @router.post("/models/promotions", status_code=202)
    def promote(request: Request, body: PromotionRequest,
                caller: Caller) -> dict[str, Any]:
        require(caller, "control.propose")  # before any look-up: no probing without the right
        container = request.app.state.container
        payload = promotion_payload(container.decisions.models, body.model_id, body.role)
        return container.security.propose(  # type: ignore[no-any-return]
            caller, PROMOTE, f"model:{payload['model_id']}", payload, body.reason)

    return router
