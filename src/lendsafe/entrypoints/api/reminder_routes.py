"""Reminder API: the providers' receipt webhook (HMAC-signed), the report and planning (staff).

The webhook is the one route without an API key: each provider signs the raw request body
with its shared secret (``LENDSAFE_REMINDER_RECEIPT_SECRETS="name:secret,..."``) and sends
``X-Lendsafe-Signature: sha256=<hex HMAC-SHA256>``. An unknown provider or a bad signature
is a 401 that says nothing more.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lendsafe.services.access import Principal, require_staff
from lendsafe.services.reminders import ReminderService


class Receipt(BaseModel):
    """A provider's delivery receipt for one message."""

    model_config = ConfigDict(extra="ignore")  # providers add fields of their own
    dedup_key: str | None = Field(default=None, max_length=180)
    provider_message_id: str | None = Field(default=None, max_length=128)
    status: Literal["delivered", "failed"]


class PlanRequest(BaseModel):
    """Plan the steps of one local send date."""

    model_config = ConfigDict(extra="forbid")
    date: date


def _service(request: Request) -> ReminderService:
    container = request.app.state.container
    service: ReminderService | None = getattr(container, "reminders", None)
    if service is None:
        service = ReminderService(container.engine)
        container.reminders = service
    return service


def reminder_router(principal: Callable[..., Principal]) -> APIRouter:
    """The reminder routes; ``principal`` is the app's API-key dependency."""
    router = APIRouter(prefix="/reminders", tags=["reminders"])
    staff_key = Depends(principal)  # a default value: annotations here are strings

    @router.post("/receipts/{provider}")
    async def receipt(provider: str, request: Request,
                      x_lendsafe_signature: Annotated[str | None, Header()] = None) -> Any:
        service = _service(request)
        body = await request.body()
        if not service.verify_signature(provider, body, x_lendsafe_signature):
            return JSONResponse(status_code=401, content={"detail": "bad signature"})
        try:
            parsed = Receipt.model_validate(json.loads(body))
        except (ValueError, ValidationError) as error:
            return JSONResponse(status_code=422, content={"detail": str(error)[:500]})
        matched = service.record_receipt(
            provider, dedup_key=parsed.dedup_key,
            provider_message_id=parsed.provider_message_id,
            delivered=parsed.status == "delivered")
        return {"matched": matched}

    @router.get("/report")
    def report(request: Request, day: Annotated[date | None, Query(alias="date")] = None,
               now: datetime | None = None, caller: Principal = staff_key) -> dict[str, Any]:
        require_staff(caller)
        service = _service(request)
        instant = now or service.clock()
        return service.report(day or instant.date(), instant)

    @router.post("/plan")
    def plan(request: Request, body: PlanRequest, caller: Principal = staff_key
             ) -> dict[str, Any]:
        require_staff(caller)
        return {"date": body.date.isoformat(), "planned": _service(request).plan(body.date)}

    return router
