"""Authentication routes: staff password (+ TOTP) login, borrower one-time code, logout, me.

Login and one-time-code routes are the only routes without a principal. Their answers never
say whether a user or phone exists; failures are throttled and audited.
"""


from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from lendsafe.services.access import Principal


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(_Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    totp: str | None = Field(default=None, pattern=r"^\d{6,8}$")


class OtpRequest(_Strict):
    phone: str = Field(pattern=r"^\+?[0-9 ()-]{6,24}$")


class OtpVerify(_Strict):
    phone: str = Field(pattern=r"^\+?[0-9 ()-]{6,24}$")
    code: str = Field(pattern=r"^\d{6}$")


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def auth_router(principal: Callable[..., Principal]) -> APIRouter:
    """The ``/auth`` routes; ``principal`` is the app's credential dependency."""
    router = APIRouter(prefix="/auth", tags=["auth"])
    Caller = Annotated[Principal, Depends(principal)]

    def security(request: Request) -> Any:
        return request.app.state.container.security

    @router.post("/login")
    def login(body: LoginRequest, request: Request) -> dict[str, Any]:
        result: dict[str, Any] = security(request).login(body.username, body.password,
                                                         body.totp, _ip(request))
        return result

    @router.post("/otp/request", status_code=202)
    def otp_request(body: OtpRequest, request: Request) -> dict[str, Any]:
        security(request).request_otp(body.phone, _ip(request))
        return {"sent": "if this phone belongs to a borrower, a code is on its way"}

    @router.post("/otp/verify")
    def otp_verify(body: OtpVerify, request: Request) -> dict[str, Any]:
        result: dict[str, Any] = security(request).verify_otp(body.phone, body.code,
                                                              _ip(request))
        return result

    @router.post("/logout", status_code=204)
    def logout(request: Request, caller: Caller) -> None:
        security(request).logout(caller)

    @router.get("/me")
    def me(caller: Caller) -> dict[str, Any]:
        return {"subject": caller.subject, "roles": sorted(caller.roles),
                "permissions": sorted(caller.permissions), "borrower_id": caller.borrower_id,
                "via": caller.via}

    return router
