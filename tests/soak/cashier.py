"""A cashier at each station, over the cashier page's real JSON API (docs/contracts.md, section 5).

The cashier signs up the station's own members, then watches the sales the pumps produce:
most get a member attached, found by phone; some of those members belong to other
stations (shared across the chain), and some spend points, online or while the station's
link to the cloud is down. A member another station signed up, not yet known here, is
sometimes signed up again here: the cloud must merge the two.

A station killed mid-request leaves the cashier unsure; the cashier does what a person
would: tries again. Redemptions carry their own id, so a retry cannot spend twice.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from .nodes import CASHIER_NAME, CASHIER_PIN, StationNode

__all__ = ["Cashier", "CashierStats", "Member"]

_PAUSE_S = 0.3
_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Member:
    phone: str
    home: str  # the station id where the member signs up


@dataclass
class CashierStats:
    attached: int = 0
    signed_up: int = 0
    signed_up_again: int = 0  # a member of another station, signed up here too
    redemptions: int = 0
    redemptions_offline: int = 0  # made while this station could not reach the cloud
    points_redeemed: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # error codes the station gave
    unreachable: int = 0  # requests lost to a station that was down


@dataclass
class _Redemption:
    redemption_id: str
    member_id: str
    points: int
    offline: bool


class _Unreachable(Exception):
    """The station did not answer (killed, restarting)."""


class Cashier:
    """Run `run(stop)` in a thread of its own; read `stats`, what the station acknowledged
    (`redeemed`, `attached`) and `error` (what stopped the thread early) after it ends."""

    def __init__(
        self,
        node: StationNode,
        members: list[Member],
        rng: random.Random,
        *,
        offline: Callable[[], bool],
        attach_share: float = 0.8,
        redeem_share: float = 0.3,
        sign_up_again_share: float = 0.3,
    ) -> None:
        self.node = node
        self.stats = CashierStats()
        self.redeemed: dict[str, tuple[str, int]] = {}  # redemption id -> (member, points)
        self.attached: dict[str, str] = {}  # sale id -> member id, as the station answered
        self.error: str | None = None
        self._home = [m for m in members if m.home == node.station_id]
        self._members = members
        self._rng = rng
        self._offline = offline
        self._attach_share = attach_share
        self._redeem_share = redeem_share
        self._sign_up_again_share = sign_up_again_share
        self._client = httpx.Client(base_url=node.web_url, timeout=_TIMEOUT_S)
        self._csrf = ""
        self._to_sign_up = list(self._home)
        self._seen: set[str] = set()
        self._pending_attach: dict[str, str] = {}  # sale id -> phone, to retry
        self._pending_redeem: list[_Redemption] = []

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.wait(_PAUSE_S):
                try:
                    self._step()
                except _Unreachable:
                    self.stats.unreachable += 1
            self._finish_pending()
        except Exception as exc:  # a harness bug: the verdict reports it, the run fails
            self.error = f"{self.node.station_id} cashier: {exc!r}"
        finally:
            self._client.close()

    def _finish_pending(self) -> None:
        """Before going home: settle what is unsure (a redemption must not stay in doubt)."""
        for _ in range(50):
            if not self._pending_redeem:
                return
            try:
                self._retry_redemptions()
            except _Unreachable:
                self.stats.unreachable += 1
                time.sleep(0.5)

    def _step(self) -> None:
        while self._to_sign_up:
            if self._sign_up(self._to_sign_up[0].phone) is not None:
                self.stats.signed_up += 1
            self._to_sign_up.pop(0)
        self._retry_redemptions()
        for sale_id, phone in list(self._pending_attach.items()):
            self._attach(sale_id, phone)
        for sale in reversed(self._call("GET", "/api/v1/sales", params={"limit": 100})["sales"]):
            sale_id = str(sale["sale_id"])
            if sale_id in self._seen:
                continue
            self._seen.add(sale_id)
            if sale["member_id"] is None and self._rng.random() < self._attach_share:
                self._attach(sale_id, self._choose().phone)

    def _choose(self) -> Member:
        if self._home and self._rng.random() < 0.6:
            return self._rng.choice(self._home)
        return self._rng.choice(self._members)

    def _attach(self, sale_id: str, phone: str) -> None:
        self._pending_attach[sale_id] = phone
        status, body = self._send("POST", f"/api/v1/sales/{sale_id}/member", {"q": phone})
        if status == 404 and body.get("error") == "member.not_found":
            if self._rng.random() >= self._sign_up_again_share:
                del self._pending_attach[sale_id]  # a driver without points today
                return
            if self._sign_up(phone) is None:
                return
            self.stats.signed_up_again += 1
            status, body = self._send("POST", f"/api/v1/sales/{sale_id}/member", {"q": phone})
        del self._pending_attach[sale_id]
        if status != 200:
            self.stats.refused[str(body.get("error", status))] += 1
            return
        self.stats.attached += 1  # once per sale: a retry's "already attached" counts once
        self.attached[sale_id] = str(body["sale"]["member_id"])
        card = body["member"]
        if self._rng.random() < self._redeem_share and int(card["points"]) >= 100:
            points = 100 * self._rng.randint(1, min(3, int(card["points"]) // 100))
            self._pending_redeem.append(
                _Redemption(str(uuid.uuid4()), str(card["member_id"]), points, self._offline())
            )
            self._retry_redemptions()

    def _retry_redemptions(self) -> None:
        while self._pending_redeem:
            todo = self._pending_redeem[0]
            status, body = self._send(
                "POST",
                "/api/v1/redemptions",
                {
                    "member_id": todo.member_id,
                    "points": todo.points,
                    "redemption_id": todo.redemption_id,
                },
            )
            self._pending_redeem.pop(0)
            if status != 201:
                self.stats.refused[str(body.get("error", status))] += 1
            else:  # booked now, or by an earlier try whose answer was lost
                self.redeemed[todo.redemption_id] = (todo.member_id, todo.points)
                self.stats.redemptions += 1
                self.stats.redemptions_offline += int(todo.offline)
                self.stats.points_redeemed += todo.points

    def _sign_up(self, phone: str) -> str | None:
        status, body = self._send("POST", "/api/v1/members", {"phone": phone, "consent": True})
        if status == 201:
            return str(body["member"]["member_id"])
        if body.get("error") == "member.exists":
            return None  # already here (an earlier try that lost its answer, or a pull)
        self.stats.refused[str(body.get("error", status))] += 1
        return None

    # ------------------------------------------------------------------ HTTP

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        status, body = self._request(method, path, **kwargs)
        if status >= 400:
            self.stats.refused[str(body.get("error", status))] += 1
            raise _Unreachable(f"{method} {path}: {status}")
        return body

    def _send(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return self._request(method, path, json=body)

    def _request(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        """One request with a live session (logging in again after a restart)."""
        for _ in range(2):
            if not self._csrf:
                self._login()
            try:
                response = self._client.request(
                    method, path, headers={"X-CSRF-Token": self._csrf}, **kwargs
                )
            except httpx.TransportError as exc:
                raise _Unreachable(str(exc)) from exc
            if response.status_code == 401:
                self._csrf = ""  # the station restarted and forgot its sessions
                continue
            if response.status_code >= 500:
                raise _Unreachable(f"{method} {path}: {response.status_code}")
            data = response.json() if response.content else {}
            return response.status_code, data if isinstance(data, dict) else {}
        raise _Unreachable("the station refused a fresh session")

    def _login(self) -> None:
        try:
            response = self._client.post(
                "/api/v1/login", json={"name": CASHIER_NAME, "pin": CASHIER_PIN}
            )
        except httpx.TransportError as exc:
            raise _Unreachable(str(exc)) from exc
        if response.status_code != 200:
            raise _Unreachable(f"login: {response.status_code}")
        self._csrf = str(response.json()["csrf_token"])
