"""Signing in to the member's app: a one-time code by message, a session for the right code
(signing a new phone up, with consent), refreshing it and signing out.

No member enumeration: `/otp` does the same work and gives the same answer for every valid
phone (it never looks the member up; a phone that is no member gets a code too, since its
owner may sign up), and `/session` tells a member from a stranger only after the right code.
Every refusal that counts (a wrong code, a reused refresh token) is committed before it is
answered. Against locking members out: `/otp` within the resend cooldown answers alike but
keeps the live code, and wrong codes are limited per address before any code is checked.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from cloud_sync.cloud.ledger.member_otp import (
    CodeCheck,
    check_code,
    consume_code,
    forgive_sign_in_try,
    issue_code,
    new_code,
    reserve_sign_in_try,
)
from cloud_sync.cloud.ledger.member_sessions import (
    MemberTokens,
    refresh_session,
    revoke_session,
    start_member_session,
)
from cloud_sync.cloud.ledger.member_signup import clean_name, member_for_phone, sign_up
from cloud_sync.cloud.ledger.postings import millis
from cloud_sync.cloud.server.context import ApiProblem, cloud_context
from cloud_sync.cloud.server.errors import error_responses
from cloud_sync.core.identity import mask_phone, normalize_phone
from cloud_sync.core.privacy import blind_index

from .auth import CurrentMember
from .gateway import GatewayError
from .sign_in import app_gateway, client_address, code_message, otp_hasher, otp_policy, typed_code
from .state import member_app_state

__all__ = ["session_router"]

log = logging.getLogger(__name__)

_PHONE_CHARS = 32
_GATEWAY_RETRY_S = 30


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OtpRequest(_Body):
    phone: Annotated[str, Field(min_length=1, max_length=_PHONE_CHARS)]


class SessionRequest(_Body):
    phone: Annotated[str, Field(min_length=1, max_length=_PHONE_CHARS)]
    code: Annotated[str, Field(min_length=1, max_length=24)]
    consent: bool = False  # a new member agrees to the programme's terms (shown by the app)
    name: Annotated[str | None, Field(max_length=120)] = None  # a new member's name, optional


class RefreshRequest(_Body):
    refresh_token: Annotated[str, Field(min_length=1, max_length=256)]


@dataclass(frozen=True)
class _Signed:
    tokens: MemberTokens
    member_id: str
    new_member: bool


@dataclass(frozen=True)
class _Throttled:
    retry_after_s: int


def _refuse(check: CodeCheck) -> ApiProblem:
    if check.verdict == "wrong":
        detail = (
            f"wrong code: {check.tries_left} tries left"
            if check.tries_left
            else "wrong code, and no tries left: ask for a new code"
        )
        return ApiProblem(
            401, "member_app.otp_wrong", detail, extra={"tries_left": check.tries_left}
        )
    return ApiProblem(
        401, "member_app.otp_expired", "no live code for this phone: ask for a new code"
    )


def _send_code(body: OtpRequest, request: Request, gateway_lock: threading.Lock) -> int:
    """Issue and send a code; the seconds it lives."""
    context = cloud_context(request)
    settings = member_app_state(request).settings
    phone = normalize_phone(body.phone)
    phone_index = blind_index(context.chain_keys, "phone", phone)
    code = new_code()
    hasher, policy = otp_hasher(context), otp_policy(settings)
    address = client_address(request)
    now_ms = millis(context.now())
    sent = context.ledger.db.transact(
        lambda conn: issue_code(
            conn,
            phone_index=phone_index,
            address=address,
            code=code,
            hasher=hasher,
            policy=policy,
            now_ms=now_ms,
        )
    )
    if sent.retry_after_s:
        raise ApiProblem(
            429,
            "member_app.otp_throttled",
            f"too many codes for this {sent.limit}: retry in {sent.retry_after_s} s",
            headers={"Retry-After": str(sent.retry_after_s)},
        )
    if not sent.fresh:
        return policy.ttl_ms // 1000  # within the resend cooldown: the live code stays
    try:
        app_gateway(request, gateway_lock).send(phone, code_message(settings, code))
    except GatewayError as exc:
        log.warning("no code sent to %s: %s", mask_phone(phone), exc)
        raise ApiProblem(
            503,
            "member_app.gateway_unavailable",
            "the code could not be sent: retry in a moment",
            headers={"Retry-After": str(_GATEWAY_RETRY_S)},
        ) from exc
    return policy.ttl_ms // 1000


def _sign_in(body: SessionRequest, request: Request) -> _Signed:
    """Check the code and start a session (signing the phone up when it is no member)."""
    context = cloud_context(request)
    state = member_app_state(request)
    phone = normalize_phone(body.phone)
    code = typed_code(body.code)
    name = clean_name(body.name)
    keys, db = context.chain_keys, context.ledger.db
    phone_index = blind_index(keys, "phone", phone)
    hasher = otp_hasher(context)
    address = client_address(request)
    now = context.now()
    now_ms = millis(now)

    def work(conn: Connection) -> _Signed | CodeCheck | _Throttled | None:
        try_id, wait = reserve_sign_in_try(
            conn,
            address=address,
            limit=state.settings.session_failures_per_address_per_hour,
            now_ms=now_ms,
        )
        if wait:
            return _Throttled(wait)  # no code checked, no try counted against the phone
        check = check_code(
            conn,
            phone_index=phone_index,
            code=code,
            hasher=hasher,
            max_tries=state.settings.otp_tries,
            now_ms=now_ms,
        )
        if check.verdict != "wrong":
            forgive_sign_in_try(conn, try_id)
        if check.verdict != "right":
            return check
        if member_for_phone(conn, phone_index) is None and not body.consent:
            return None  # the code stays live for the retry with consent
        if not consume_code(conn, phone_index=phone_index, code_hash=check.code_hash):
            return CodeCheck("expired")
        member_id, created = sign_up(db, conn, keys, phone=phone, name=name, now=now)
        tokens = start_member_session(
            conn, member_id, now_ms=now_ms, access_ms=state.access_ms, refresh_ms=state.refresh_ms
        )
        return _Signed(tokens, member_id, created)

    outcome = db.transact(work)  # committed first: a wrong answer's try is counted
    if isinstance(outcome, _Throttled):
        raise ApiProblem(
            429,
            "member_app.session_throttled",
            f"too many wrong codes from this address: retry in {outcome.retry_after_s} s",
            headers={"Retry-After": str(outcome.retry_after_s)},
        )
    if isinstance(outcome, CodeCheck):
        if outcome.verdict == "wrong" and not outcome.tries_left:
            log.warning(
                "a sign-in code died of wrong answers: %s, the last from %s",
                mask_phone(phone),
                address,
            )
        raise _refuse(outcome)
    if outcome is None:
        raise ApiProblem(
            409,
            "member_app.consent_required",
            "this phone is not a member yet: show the programme's terms and send "
            "consent: true to join (the code stays valid)",
        )
    if outcome.new_member:
        log.info("member signed up in the app: %s", mask_phone(phone))
    return outcome


def session_router() -> APIRouter:
    router = APIRouter(prefix="/m/api/v1", tags=["member app"])
    gateway_lock = threading.Lock()  # builds the app's gateway once

    @router.post(
        "/otp",
        status_code=status.HTTP_202_ACCEPTED,
        responses=error_responses(
            "member_app.otp_throttled", "member_app.gateway_unavailable", body=True
        ),
    )
    def send_code(body: OtpRequest, request: Request) -> dict[str, Any]:
        """Send a 6-digit sign-in code to the phone; the same answer for every valid phone."""
        return {"sent": True, "expires_in": _send_code(body, request, gateway_lock)}

    @router.post(
        "/session",
        responses=error_responses(
            "member_app.otp_wrong",
            "member_app.otp_expired",
            "member_app.consent_required",
            "member_app.name",
            "member_app.session_throttled",
            body=True,
        ),
    )
    def start_session(body: SessionRequest, request: Request) -> dict[str, Any]:
        """Trade the phone's live code for tokens; a phone that is no member signs up here
        with `consent: true` (409 `member_app.consent_required` without it; the code stays)."""
        signed = _sign_in(body, request)
        return {
            **signed.tokens.as_dict(),
            "member_id": signed.member_id,
            "new_member": signed.new_member,
        }

    @router.post("/session/refresh", responses=error_responses(body=True))
    def refresh(body: RefreshRequest, request: Request) -> dict[str, Any]:
        """A new token pair for a live refresh token; the old refresh token dies, and
        presenting it again later ends the session (reuse: two holders)."""
        context = cloud_context(request)
        state = member_app_state(request)
        now_ms = millis(context.now())
        tokens = context.ledger.db.transact(
            lambda conn: refresh_session(
                conn,
                body.refresh_token,
                now_ms=now_ms,
                access_ms=state.access_ms,
                refresh_ms=state.refresh_ms,
            )
        )
        if tokens == "reused":
            log.warning("a used refresh token came back: its session is revoked")
            raise ApiProblem(
                401, "unauthorized", "a used refresh token: the session is ended, sign in again"
            )
        if not isinstance(tokens, MemberTokens):
            raise ApiProblem(401, "unauthorized", "unknown, expired or used refresh token")
        return tokens.as_dict()

    @router.delete("/session", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses())
    def sign_out(member: CurrentMember, request: Request) -> Response:
        """End this session: its access and refresh tokens stop working at once."""
        context = cloud_context(request)
        now_ms = millis(context.now())
        context.ledger.db.transact(
            lambda conn: revoke_session(conn, member.session_id, now_ms=now_ms)
        )
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router
