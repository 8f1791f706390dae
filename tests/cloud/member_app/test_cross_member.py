"""The authorization walker: every `/m/api/v1/me…` route the app serves, found in the app
itself (so a route added later is walked too), is called with member A's token and member
B's ids (sale ids, plates, member ids, redemption ids, a cursor of B's sales) in paths,
queries and bodies. Nothing of B is ever returned and nothing of B changes. Without a token,
with a station's token and with the admin token every one of them answers 401.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select

from cloud_sync.cloud.ledger.member_history import encode_cursor
from cloud_sync.cloud.ledger.schema import members, redemptions, sales
from cloud_sync.cloud.ledger.schema_app import checkins, feedback, invoice_requests, member_sessions
from tests.cloud.hq.seed_chain import NOW
from tests.cloud.ledger.fake_station import member_id
from tests.cloud.server.helpers import ADMIN_TOKEN
from tests.test_docs import app_routes

from .conftest import MemberApp

pytestmark = pytest.mark.usefixtures("cloud_db_url")

_PARAM = re.compile(r"\{([^}]+)\}")
B_PLATE = "京B22222"


def me_routes(mapp: MemberApp) -> list[tuple[str, str]]:
    """Every (method, path template) under /m/api/v1/me, DELETE /me last (it ends A)."""
    found = sorted(
        (method, path)
        for method, path in app_routes(mapp.app.routes)
        if path == "/m/api/v1/me" or path.startswith("/m/api/v1/me/")
    )
    assert ("GET", "/m/api/v1/me") in found and len(found) >= 10
    return sorted(found, key=lambda route: route == ("DELETE", "/m/api/v1/me"))


class Other:
    """Member B: what A must never see, and what A could send of B's."""

    def __init__(self, mapp: MemberApp) -> None:
        self.member = mapp.seeded.members[0]
        added = mapp.client.post(
            "/m/api/v1/me/plates", headers=mapp.auth(self.member), json={"plate": B_PLATE}
        )
        assert added.status_code == 201

        def read(conn: Any) -> tuple[list[Any], list[str]]:
            family = [self.member, member_id(9)]
            sold = conn.execute(
                select(sales.c.sale_id, sales.c.ended_at).where(sales.c.member_id.in_(family))
            ).all()
            redeemed = conn.execute(
                select(redemptions.c.redemption_id).where(redemptions.c.member_id.in_(family))
            ).scalars()
            return list(sold), list(redeemed)

        self.sales, self.redemptions = mapp.ledger.db.read(read)
        assert len(self.sales) == 4 and len(self.redemptions) == 1
        self.sale_ids = [row.sale_id for row in self.sales]
        self.cursor = encode_cursor(self.sales[0].ended_at, self.sales[0].sale_id)
        # Strings only B's data holds: none may ever appear in an answer to A.
        self.secrets = [
            self.member,
            member_id(9),
            "138****8001",
            "13800138001",
            B_PLATE,
            *self.sale_ids,
            *self.redemptions,
        ]

    def path_values(self, name: str) -> list[str]:
        ids = [self.sale_ids[0], self.member, self.redemptions[0]]
        return [B_PLATE, *ids] if "plate" in name else [*ids, B_PLATE]

    def bodies(self) -> list[dict[str, Any]]:
        sale = self.sale_ids[0]
        return [
            {"plate": B_PLATE},
            {"sale_id": sale, "rating": 5, "comment": "很好"},
            {"sale_id": sale, "buyer_name": "某公司", "tax_id": "", "email": "a@example.cn"},
            {"marketing": True},
            {"member_id": self.member, "marketing": False, "plate": B_PLATE, "sale_id": sale},
        ]

    def state(self, mapp: MemberApp) -> dict[str, Any]:
        view = mapp.ledger.member(self.member, NOW)
        family = [self.member, member_id(9)]

        def read(conn: Any) -> dict[str, Any]:
            def count(table: Any, *where: Any) -> int:
                return int(
                    conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
                )

            return {
                "marketing_at": conn.execute(
                    select(members.c.marketing_at).where(members.c.member_id == self.member)
                ).scalar_one(),
                "live_sessions": count(
                    member_sessions,
                    member_sessions.c.member_id == self.member,
                    member_sessions.c.revoked_ms.is_(None),
                ),
                "sales": sorted(
                    tuple(row)
                    for row in conn.execute(
                        select(sales.c.sale_id, sales.c.status).where(sales.c.member_id.in_(family))
                    )
                ),
                "checkins": count(checkins, checkins.c.member_id.in_(family)),
                "invoices": count(invoice_requests, invoice_requests.c.member_id.in_(family)),
                "feedback": count(feedback, feedback.c.member_id.in_(family)),
            }

        return {"view": view, **mapp.ledger.db.read(read)}


def _calls(route: tuple[str, str], other: Other) -> list[dict[str, Any]]:
    """The requests to try on one route with B's ids."""
    method, template = route
    names = _PARAM.findall(template)
    paths = [template]
    for name in names:
        paths = [p.replace(f"{{{name}}}", v, 1) for p in paths for v in other.path_values(name)]
    query = {"before": other.cursor, "member_id": other.member, "sale_id": other.sale_ids[0]}
    calls: list[dict[str, Any]] = []
    for path in paths:
        calls.append({"method": method, "url": path})
        if method == "GET":
            calls.append({"method": method, "url": path, "params": query})
            calls.append({"method": method, "url": path, "params": {"member_id": other.member}})
        elif method in ("POST", "PUT", "PATCH"):
            calls += [{"method": method, "url": path, "json": body} for body in other.bodies()]
    return calls


def _sent(call: dict[str, Any]) -> str:
    return repr(call)


def test_a_members_token_never_reads_or_changes_another_members_data(mapp: MemberApp) -> None:
    other = Other(mapp)
    before = other.state(mapp)
    a = mapp.seeded.members[1]
    tried = 0
    for route in me_routes(mapp):
        for call in _calls(route, other):
            mapp.clock.advance(seconds=61)  # past any per-minute limit of the route
            answer = mapp.client.request(**call, headers=mapp.auth(a))
            tried += 1
            assert answer.status_code < 500, (call, answer.text)
            text = answer.text
            for secret in other.secrets:
                if answer.status_code < 300 or secret not in _sent(call):
                    assert secret not in text, (call, answer.status_code, secret)
            if _PARAM.search(route[1]) and answer.status_code < 300:
                raise AssertionError(f"{call}: B's id in the path was accepted")
    assert tried > 30
    mapp.clock.now = NOW
    assert other.state(mapp) == before


@pytest.mark.parametrize("who", ["nobody", "station", "admin", "garbage", "refresh"])
def test_only_a_member_access_token_opens_a_me_route(mapp: MemberApp, who: str) -> None:
    other = Other(mapp)
    before = other.state(mapp)
    headers = {
        "nobody": {},
        "station": {"Authorization": f"Bearer {mapp.ledger.rotate_token('S001')}"},
        "admin": {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-HQ-Actor": "x"},
        "garbage": {"Authorization": "Bearer lpm_a_" + "A" * 43},
        "refresh": {"Authorization": "Bearer lpm_r_" + "A" * 43},
    }[who]
    for route in me_routes(mapp):
        for call in _calls(route, other)[:2]:
            answer = mapp.client.request(**call, headers=headers)
            assert answer.status_code == 401, (who, call, answer.text)
            assert answer.json()["error"] == "unauthorized"
            assert answer.headers["www-authenticate"] == "Bearer"
    assert other.state(mapp) == before
