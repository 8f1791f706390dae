"""The member's token in the cloud's OpenAPI document: `/docs` shows the `MemberToken` scheme
on every route that takes the member and on none of the public ones, and the member routes
hold their document under schemathesis with a real member's token (the document only
describes: the cloud's own 401 answers a missing or foreign token, never FastAPI's 403)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.openapi_contract import run_contract

from .conftest import MemberApp

API = "/m/api/v1"
PUBLIC = {
    f"POST {API}/otp",
    f"POST {API}/session",
    f"POST {API}/session/refresh",
    f"GET {API}/stations",
}
ENDS_THE_SESSION = frozenset({f"DELETE {API}/session", f"DELETE {API}/me"})  # tested elsewhere
sqlite_only = pytest.mark.parametrize("cloud_db_url", ["sqlite"], indirect=True)


def _member_operations(document: dict[str, Any]) -> dict[str, Any]:
    return {
        f"{method.upper()} {path}": operation
        for path, operations in document["paths"].items()
        if path.startswith(API)
        for method, operation in operations.items()
    }


@sqlite_only
def test_every_route_that_takes_the_member_shows_the_member_token(mapp: MemberApp) -> None:
    document = mapp.client.get("/openapi.json").json()
    scheme = document["components"]["securitySchemes"]["MemberToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    operations = _member_operations(document)
    assert set(operations) > PUBLIC and f"GET {API}/me/sales" in operations
    for label, operation in operations.items():
        expected: list[dict[str, list[str]]] | None = (
            None if label in PUBLIC else [{"MemberToken": []}]
        )
        assert operation.get("security") == expected, label


@sqlite_only
@pytest.mark.parametrize("header", [None, "Basic bWVtYmVy", "Bearer", "Bearer lpm_a_forged"])
def test_the_cloud_still_answers_a_missing_or_wrong_token(
    mapp: MemberApp, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    answer = mapp.client.get(f"{API}/me", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized"


@pytest.mark.slow
@sqlite_only
def test_the_member_routes_hold_their_document_with_a_member_token(mapp: MemberApp) -> None:
    operations = _member_operations(mapp.client.get("/openapi.json").json())
    others = {
        f"{method.upper()} {path}"
        for path, methods in mapp.client.get("/openapi.json").json()["paths"].items()
        for method in methods
    } - set(operations)
    token = mapp.token_for(mapp.seeded.members[1])
    tested, failures = run_contract(
        mapp.app,
        "/openapi.json",
        {"MemberToken": {"bearer": token}},
        skip=frozenset(others) | ENDS_THE_SESSION,
    )
    assert set(tested) == set(operations) - ENDS_THE_SESSION
    assert failures == [], "\n\n".join(failures)
    still = mapp.client.get(f"{API}/me", headers={"Authorization": f"Bearer {token}"})
    assert still.status_code == 200  # the token was live the whole run: the routes were read
