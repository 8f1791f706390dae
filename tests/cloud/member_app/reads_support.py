"""Helpers of the member-read tests: a member of our own at the silent station S003 of the
seeded chain (so its sequence starts at 1), pushed at the times the test names."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tests.cloud.ledger.fake_station import FakeStation, fresh_member_id

from .conftest import MemberApp

__all__ = ["Third", "third_station"]


@dataclass
class Third:
    mapp: MemberApp
    station: FakeStation
    members: list[str] = field(default_factory=list)

    def register(self, phone: str, at: datetime, **extra: Any) -> str:
        member = self.station.register(phone, at, mid=extra.pop("mid", fresh_member_id()), **extra)
        self.members.append(member)
        return member

    def push(self, at: datetime) -> None:
        answer = self.mapp.ledger.push("S003", self.station.request(), at)
        rejected = [r for r in answer.results if r.status != "applied"]
        assert rejected == [], rejected

    def get(self, member: str, path: str, **params: Any) -> Any:
        answer = self.mapp.client.get(
            f"/m/api/v1{path}", headers=self.mapp.auth(member), params=params
        )
        assert answer.status_code == 200, answer.text
        return answer.json()


def third_station(mapp: MemberApp) -> Third:
    return Third(mapp, FakeStation("S003", mapp.ledger.chain_keys))
