"""What signing in by phone needs besides the ledger: the key codes are hashed with, the
caller's address, the message text and the app's message gateway.

The code key is derived (HKDF) from the cloud's rule-signing key, which only the cloud holds
and every worker reads from the data folder: codes stay checkable across restarts and
workers, and a copy of the database, or a station's member keys, cannot test guesses.
"""

from __future__ import annotations

import threading
import unicodedata
from typing import Final

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fastapi import Request

from cloud_sync.cloud.ledger.member_otp import CODE_DIGITS, OtpHasher, OtpPolicy
from cloud_sync.cloud.server.context import ApiProblem, CloudContext, cloud_context
from cloud_sync.cloud.server.settings import MemberAppSection

from .gateway import MessageGateway, build_gateway
from .state import member_app_state

__all__ = [
    "GATEWAY_KEY",
    "app_gateway",
    "client_address",
    "code_message",
    "otp_hasher",
    "otp_policy",
    "typed_code",
]

GATEWAY_KEY: Final = "member_gateway"  # on app.state: built at the first send (tests swap it)
_HKDF_INFO: Final = b"loyalpump member app one-time codes v1"


def otp_hasher(context: CloudContext) -> OtpHasher:
    raw = context.signing_key.private_bytes_raw()
    key = HKDF(algorithm=SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(raw)
    return OtpHasher(key)


def otp_policy(settings: MemberAppSection) -> OtpPolicy:
    return OtpPolicy(
        ttl_ms=settings.otp_ttl_minutes * 60_000,
        tries=settings.otp_tries,
        per_phone_per_hour=settings.otp_per_phone_per_hour,
        per_address_per_hour=settings.otp_per_address_per_hour,
        per_phone_per_day=settings.otp_per_phone_per_day,
        resend_ms=settings.otp_resend_seconds * 1000,
    )


def client_address(request: Request) -> str:
    """The connection's address. uvicorn replaces it with the `X-Forwarded-For` one only
    when the peer is one of `[cloud] trusted_proxies` (see `cloud run`), as for the HQ
    login limits; a forwarded header from anyone else changes nothing."""
    return request.client.host[:64] if request.client else "-"


def typed_code(raw: str) -> str:
    """The 6 digits of a code as typed (full-width digits and spaces allowed)."""
    code = "".join(unicodedata.normalize("NFKC", raw).split())
    if len(code) != CODE_DIGITS or not code.isascii() or not code.isdigit():
        raise ApiProblem(422, "invalid", f"code: {CODE_DIGITS} digits expected")
    return code


def code_message(settings: MemberAppSection, code: str) -> str:
    """The text sent: brand first (as Chinese SMS carriers expect), the code, its lifetime."""
    return (
        f"【{settings.brand_name}】验证码 {code}，{settings.otp_ttl_minutes} 分钟内有效，"
        "请勿告诉他人。"
    )


def app_gateway(request: Request, lock: threading.Lock) -> MessageGateway:
    """The app's gateway, built once (under the router's `lock`) from `[member_app] gateway`
    on first use."""
    state = request.app.state
    gateway: MessageGateway | None = getattr(state, GATEWAY_KEY, None)
    if gateway is None:
        with lock:
            gateway = getattr(state, GATEWAY_KEY, None)
            if gateway is None:
                member_app = member_app_state(request)
                clock = cloud_context(request).clock
                gateway = build_gateway(member_app.settings, member_app.data_dir, clock)
                setattr(state, GATEWAY_KEY, gateway)
    return gateway
