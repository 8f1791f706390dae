"""Who is asking the HQ console, and what their role lets them do.

Two ways in: a person's session cookie (pages and the console's own API calls, with a CSRF
token on every change), or the admin token (`Authorization: Bearer …`, for machines; it acts
as an admin named by `X-HQ-Actor`, "token" when absent). The gate marks a request that
carried the admin token; everything else is decided here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final, Literal

from fastapi import Depends, Request

from cloud_sync.cloud.server.context import ADMIN_TOKEN_KEY, ApiProblem

__all__ = [
    "ADMIN_TOKEN_KEY",
    "ROLES",
    "Admin",
    "HqUser",
    "LoginRequired",
    "Marketer",
    "PageAdmin",
    "PageMarketer",
    "PageReader",
    "Reader",
    "Role",
    "hq_admin",
    "hq_marketer",
    "hq_reader",
    "page_admin",
    "page_marketer",
    "page_reader",
]

Role = Literal["admin", "marketer", "auditor"]
ROLES: Final[tuple[Role, ...]] = ("admin", "marketer", "auditor")
_RANK: Final = {"auditor": 0, "marketer": 1, "admin": 2}


@dataclass(frozen=True)
class HqUser:
    """A person (or the admin token) using the console; `via` says which."""

    name: str
    role: Role
    via: Literal["session", "token"]
    csrf: str = ""

    def may(self, role: Role) -> bool:
        """True when this user's role includes `role` (admin ⊃ marketer ⊃ auditor)."""
        return _RANK[self.role] >= _RANK[role]


def _token_user(request: Request) -> HqUser | None:
    if not request.scope.get("state", {}).get(ADMIN_TOKEN_KEY):
        return None
    actor = (request.headers.get("x-hq-actor") or "token").strip()[:64] or "token"
    return HqUser(name=actor, role="admin", via="token")


def _user(request: Request) -> HqUser:
    user = _token_user(request)
    if user is None:
        raise ApiProblem(401, "unauthorized", "sign in to the HQ console or send the admin token")
    return user


def _requiring(role: Role, request: Request) -> HqUser:
    user = _user(request)
    if not user.may(role):
        raise ApiProblem(403, "forbidden", f"this needs the {role} role")
    return user


def hq_reader(request: Request) -> HqUser:
    """Any HQ user: auditors read everything."""
    return _user(request)


def hq_marketer(request: Request) -> HqUser:
    return _requiring("marketer", request)


def hq_admin(request: Request) -> HqUser:
    return _requiring("admin", request)


Reader = Annotated[HqUser, Depends(hq_reader)]
Marketer = Annotated[HqUser, Depends(hq_marketer)]
Admin = Annotated[HqUser, Depends(hq_admin)]


class LoginRequired(Exception):
    """A page asked without a session: the console answers with a redirect to the login."""


def _page_user(role: Role, request: Request) -> HqUser:
    try:
        return _requiring(role, request)
    except ApiProblem as problem:
        if problem.status == 401:
            raise LoginRequired from problem
        raise


def page_reader(request: Request) -> HqUser:
    return _page_user("auditor", request)


def page_marketer(request: Request) -> HqUser:
    return _page_user("marketer", request)


def page_admin(request: Request) -> HqUser:
    return _page_user("admin", request)


PageReader = Annotated[HqUser, Depends(page_reader)]
PageMarketer = Annotated[HqUser, Depends(page_marketer)]
PageAdmin = Annotated[HqUser, Depends(page_admin)]
