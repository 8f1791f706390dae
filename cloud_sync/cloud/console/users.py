"""HQ user management (admins only): add a user, change a role, disable or enable, reset a
password. The page and the JSON API do the same through `_add` and `_change`; each change is
audited in its own transaction, and a new password (typed or generated, a generated one shown
once) is hashed within the console's hashing slots.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from cloud_sync.cloud.ledger import LedgerError
from cloud_sync.cloud.ledger.hq_users import (
    MAX_PASSWORD,
    add_hq_user,
    generate_password,
    hash_password,
    list_hq_users,
    update_hq_user,
    validate_name,
    validate_password,
    validate_role,
)
from cloud_sync.cloud.server.context import ApiProblem, cloud_context
from cloud_sync.cloud.server.errors import error_responses

from .auth import ROLES, Admin, HqUser, PageAdmin, hq_state
from .pages import render

__all__ = ["users_router"]

_INPUT = ("user.name", "user.role", "user.password", "login.busy")
RoleName = Literal["admin", "marketer", "auditor"]


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=32)
    role: RoleName
    password: str | None = Field(default=None, max_length=MAX_PASSWORD)  # none: generated


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: RoleName | None = None
    disabled: bool | None = None
    password: str | None = Field(default=None, max_length=MAX_PASSWORD)
    generate_password: bool = False


async def _hash(request: Request, password: str) -> str:
    slots = hq_state(request).slots
    if not slots.try_acquire():
        raise ApiProblem(503, "login.busy", "every password check is busy; retry in a moment")
    try:
        return await slots.run(hash_password, password)
    finally:
        slots.release()


async def _add(
    request: Request, user: HqUser, name: str, role: str, password: str | None
) -> tuple[dict[str, Any], str | None]:
    validate_name(name)
    validate_role(role)
    shown = None
    if not password:
        password = shown = generate_password()
    password_hash = await _hash(request, validate_password(password))
    context = cloud_context(request)
    now = context.now()
    added = await run_in_threadpool(
        context.ledger.db.transact,
        lambda conn: add_hq_user(
            conn, name=name, role=role, password_hash=password_hash, by=user.name, at=now
        ),
    )
    return added, shown


async def _change(
    request: Request, user: HqUser, name: str, change: UserChange
) -> tuple[dict[str, Any], str | None]:
    shown = None
    password = change.password
    if change.generate_password:
        password = shown = generate_password()
    password_hash = None if password is None else await _hash(request, validate_password(password))
    context = cloud_context(request)
    now = context.now()
    changed = await run_in_threadpool(
        context.ledger.db.transact,
        lambda conn: update_hq_user(
            conn,
            name,
            by=user.name,
            at=now,
            role=change.role,
            disabled=change.disabled,
            password_hash=password_hash,
        ),
    )
    return changed, shown


def _list(request: Request) -> list[dict[str, Any]]:
    return cloud_context(request).ledger.db.read(list_hq_users)


async def _page(
    request: Request, user: HqUser, *, notice: str = "", error: str = "", status: int = 200
) -> Response:
    users = await run_in_threadpool(_list, request)
    context = {"active": "users", "users": users, "notice": notice, "error": error}
    return render(request, "hq_users.html", user, context, status_code=status)


async def _outcome(
    request: Request,
    user: HqUser,
    work: Awaitable[tuple[dict[str, Any], str | None]],
    done: tuple[str, str],
    secret: tuple[str, str],
) -> Response:
    """The users page after a form's change: a refusal as the error, else `done` (zh, en)
    with the user's name and, once, a password made for them."""
    zh = request.cookies.get("lang") != "en"
    try:
        row, shown = await work
    except (LedgerError, ApiProblem) as exc:
        return await _page(request, user, error=str(exc), status=422)
    text = f"{done[0]} {row['name']}。" if zh else f"{done[1]} {row['name']}."
    if shown:
        text += f" {secret[0] if zh else secret[1]}: {shown}"
    return await _page(request, user, notice=text)


def users_router() -> APIRouter:
    router = APIRouter(tags=["HQ console"])

    @router.get("/api/v1/hq/users", responses=error_responses())
    def api_users(request: Request, user: Admin) -> list[dict[str, Any]]:
        """Every HQ user (never a password hash), with their live session count."""
        return _list(request)

    @router.post(
        "/api/v1/hq/users",
        status_code=201,
        responses=error_responses("csrf", "user.exists", *_INPUT, body=True),
    )
    async def api_add_user(request: Request, user: Admin, body: NewUser) -> dict[str, Any]:
        """Add an HQ user; without a password one is generated and answered once."""
        added, shown = await _add(request, user, body.name, body.role, body.password)
        return {**added, **({"password": shown} if shown else {})}

    @router.patch(
        "/api/v1/hq/users/{name}",
        responses=error_responses("csrf", "user.unknown", "user.last_admin", *_INPUT, body=True),
    )
    async def api_change_user(
        request: Request, user: Admin, name: str, body: UserChange
    ) -> dict[str, Any]:
        """Change a role, disable or enable, set or generate a password; ends their sessions."""
        changed, shown = await _change(request, user, name, body)
        return {**changed, **({"password": shown} if shown else {})}

    @router.get("/hq/users", include_in_schema=False)
    async def users_page(request: Request, user: PageAdmin) -> Response:
        return await _page(request, user)

    @router.post("/hq/users", include_in_schema=False)
    async def users_add(
        request: Request,
        user: PageAdmin,
        name: Annotated[str, Form(max_length=64)] = "",
        role: Annotated[str, Form(max_length=16)] = "auditor",
        password: Annotated[str, Form(max_length=MAX_PASSWORD)] = "",
    ) -> Response:
        added = _add(request, user, name.strip(), role, password or None)
        return await _outcome(request, user, added, ("已添加", "Added"), ("初始密码", "Password"))

    @router.post("/hq/users/{name}", include_in_schema=False)
    async def users_change(
        request: Request,
        user: PageAdmin,
        name: str,
        action: Annotated[str, Form(max_length=16)] = "",
        role: Annotated[str | None, Form(max_length=16)] = None,
    ) -> Response:
        changes = {
            "role": UserChange.model_validate({"role": role}) if role in ROLES else None,
            "disable": UserChange(disabled=True),
            "enable": UserChange(disabled=False),
            "reset": UserChange(generate_password=True),
        }
        change = changes.get(action)
        if change is None:
            return await _page(request, user, error="unknown action or role", status=422)
        changed = _change(request, user, name, change)
        return await _outcome(
            request, user, changed, ("已更新", "Updated"), ("新密码", "New password")
        )

    return router
