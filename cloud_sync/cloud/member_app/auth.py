"""Who is asking the member API: the member whose access token came in `Authorization`.

Only a member's own access token passes; a station's token, the admin token or an HQ
session are not member tokens and get 401, like a token that expired or was revoked. Every
`/me` route takes the member from here, never from the request's body or path, so a member
can only ever read and change their own data.

The member is resolved here, once, for every route: a member merged into another since the
session began is its survivor (`member_id`), and an erased or vanished member is signed
out (401) whatever its token says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from cloud_sync.cloud.ledger.member_self import signed_in_member
from cloud_sync.cloud.ledger.member_sessions import member_of_access
from cloud_sync.cloud.ledger.postings import millis
from cloud_sync.cloud.server.context import ApiProblem, cloud_context

__all__ = ["MEMBER_TOKEN", "CurrentMember", "MemberPrincipal", "bearer_token", "current_member"]

# The OpenAPI document's word for the member's token (`/docs` shows a lock on every route that
# takes the member); it checks nothing: `current_member` does, with the cloud's own answers.
MEMBER_TOKEN = HTTPBearer(
    scheme_name="MemberToken",
    description="A member's access token (`lpm_a_…`) from `POST /m/api/v1/session`.",
    auto_error=False,
)


@dataclass(frozen=True)
class MemberPrincipal:
    member_id: str  # the member to read and change: the survivor of any merge
    session_id: str
    signed_in_as: str = ""  # the id the session was started for (a merged id, maybe)


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 256:
        return None
    return token


async def current_member(
    request: Request,
    _documented: Annotated[HTTPAuthorizationCredentials | None, Depends(MEMBER_TOKEN)],
) -> MemberPrincipal:
    token = bearer_token(request)
    if token is None:
        raise ApiProblem(401, "unauthorized", "send Authorization: Bearer <member access token>")
    context = cloud_context(request)
    now_ms = millis(context.now())

    def look_up() -> tuple[str, str, str] | None:
        def work(conn: Connection) -> tuple[str, str, str] | None:
            found = member_of_access(conn, token, now_ms=now_ms)
            if found is None:
                return None
            row = signed_in_member(conn, found[0])
            return None if row is None else (str(row.member_id), found[1], found[0])

        return context.ledger.db.read(work)

    found = await run_in_threadpool(look_up)
    if found is None:
        raise ApiProblem(401, "unauthorized", "signed out: unknown, expired or revoked token")
    return MemberPrincipal(member_id=found[0], session_id=found[1], signed_in_as=found[2])


CurrentMember = Annotated[MemberPrincipal, Depends(current_member)]
