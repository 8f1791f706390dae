"""The manager's tools and the bill, through the services on a real station store.

Manual sales are judged where they are booked (recent prices from the dispensers' own
sales, never from typed ones); a redemption against a bill never takes off more than is
due, however many cashiers try at once; corrections are booked once per request id.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest

from edge_agent.errors import ServiceError
from edge_agent.services.corrections import reversal_preview
from edge_agent.services.manual_sales import (
    grade_choices,
    manual_sale_form,
    manual_source_key,
    recent_price,
)
from edge_agent.services.members import member_view, register_member
from edge_agent.services.points import (
    Bill,
    adjust_member_points,
    quote_redemption,
    redeem_points,
    verify_ledger,
)
from edge_agent.services.sales import (
    SaleInput,
    SaleView,
    attach_member,
    list_sales,
    record_sale,
    reverse_sale,
)
from edge_agent.services.station import Station
from edge_agent.store.outbox import event_for
from tests.support import FakeClock, pump_sale


def typed(station: Station, litres: str, amount: str, **extra: object) -> SaleInput:
    fields: dict[str, object] = {
        "source": "manual",
        "pump": 2,
        "grade": "92",
        "litres": Decimal(litres),
        "amount": Decimal(amount),
        "ended_at": station.now(),
        "actor": "user:mia",
    }
    fields.update(extra)
    return SaleInput(**fields)  # type: ignore[arg-type]


def refused(code: str, call: object, *args: object, **kwargs: object) -> ServiceError:
    assert callable(call)
    with pytest.raises(ServiceError) as caught:
        call(*args, **kwargs)
    assert caught.value.code == code, caught.value
    return caught.value


def member(station: Station, phone: str = "13800138000") -> str:
    return register_member(station, phone=phone, consent_channel="test", actor="t").member_id


def dispensed(station: Station, litres: str, amount: str, n: int, grade: str = "92") -> SaleView:
    return record_sale(
        station,
        SaleInput(
            source="dart",
            source_key=f"dart:t:{grade}:{n}",
            pump=1,
            nozzle=1,
            grade=grade,
            litres=Decimal(litres),
            amount=Decimal(amount),
            ended_at=station.now() - timedelta(minutes=n),
        ),
    ).sale


# --- manual sales --------------------------------------------------------------------------


def test_the_dispensers_recent_price_sets_the_band_and_typed_prices_never_move_it(
    station: Station, clock: FakeClock
) -> None:
    for n, amount in enumerate(["300.00", "300.00", "300.00", "480.00", "300.00"]):
        dispensed(station, "40.00", amount, n)  # 7.50 a litre, and one odd 12.00
    with station.store.read() as tx:
        assert recent_price(tx, "92", station.now()) == Decimal("7.5")
    error = refused("sale.price_recent", record_sale, station, typed(station, "40", "400.00"))
    assert error.params == {
        "price": "10.00",
        "grade": "92",
        "low": "5.25",
        "high": "9.75",
        "recent": "7.50",
        "pct": "30",
    }
    assert str(error) == (
        "unit price 10.00 yuan/L is more than 30% off grade 92's recent price here, "
        "7.50 yuan/L (allowed 5.25-9.75)"
    )
    for _ in range(25):  # typed sales at the band's edge do not creep the band upwards
        record_sale(station, typed(station, "10", "97.50"))
    _, choices = grade_choices(station)
    band = next(c for c in choices if c.code == "92").band
    assert (band.low, band.high, band.basis, band.recent) == (
        Decimal("5.25"),
        Decimal("9.75"),
        "recent",
        Decimal("7.5"),
    )
    clock.advance(days=8)  # the dispensers' sales are too old now: the station's band
    band = next(c for c in grade_choices(station)[1] if c.code == "92").band
    assert (band.low, band.high, band.basis) == (Decimal("1.00"), Decimal("20.00"), "station")


def test_a_refused_manual_sale_leaves_no_trace(station: Station) -> None:
    buyer = member(station)
    before = len(list_sales(station, 100))
    refused(
        "sale.litres_range",
        record_sale,
        station,
        typed(station, "5000", "1", member_id=buyer),
    )
    assert len(list_sales(station, 100)) == before
    assert member_view(station, buyer).points == 0
    with station.store.read() as tx:
        assert event_for(tx, "sale.recorded", "member_id", buyer) == []


def test_the_end_time_may_be_back_to_seven_days(station: Station) -> None:
    week_ago = station.now() - timedelta(days=7)
    done = record_sale(station, typed(station, "40", "300.00", ended_at=week_ago)).sale
    assert done.ended_at == week_ago.isoformat()
    refused(
        "sale.ended_old",
        record_sale,
        station,
        typed(station, "40", "300.00", ended_at=week_ago - timedelta(minutes=1)),
    )
    form = manual_sale_form(station)
    assert form["ended_at"]["default"] == station.now().isoformat()
    assert form["ended_at"]["earliest"] == week_ago.isoformat()
    assert form["max_litres"] == 200
    assert [g["code"] for g in form["grades"]] == ["0", "92", "95"]


def test_a_manual_sale_with_a_key_is_recorded_once(station: Station) -> None:
    key = manual_source_key(station, "till-7f3a9c")
    first = record_sale(station, typed(station, "20", "150.00", source_key=key))
    again = record_sale(station, typed(station, "20", "150.00", source_key=key))
    assert first.created and not again.created
    assert again.sale.sale_id == first.sale.sale_id
    refused(
        "sale.key_conflict", record_sale, station, typed(station, "21", "157.50", source_key=key)
    )


# --- redemption against the bill -------------------------------------------------------------


def gold_member(station: Station) -> str:
    """A member past the gold threshold (1,000 L in 90 days, an hour ago), with 6,000 points."""
    buyer = member(station)
    an_hour_ago = station.now() - timedelta(hours=1)
    for litres in (700, 300):
        sale = pump_sale(station, litres, None, at=an_hour_ago)
        attach_member(station, sale.sale_id, buyer, actor="t")
    adjust_member_points(station, buyer, 5_000, actor="m", reason="welcome")
    assert member_view(station, buyer).points == 6_000
    return buyer


def test_the_quote_and_the_redemption_agree_on_the_bill(station: Station) -> None:
    buyer = gold_member(station)
    sale = dispensed(station, "40.00", "300.00", 1)  # not attached: priced at the tier it ended in
    figures = quote_redemption(station, buyer, Bill(sale_id=sale.sale_id))
    assert (figures.facts.bill_fen, figures.facts.discount_fen) == (30_000, 800)
    assert figures.due_fen == 29_200
    assert (figures.max_points, figures.all_points, figures.all_fits) == (6_000, 6_000, True)
    preview = quote_redemption(station, buyer, Bill(sale_id=sale.sale_id), 1_000)
    assert (preview.value_fen, preview.collect_fen, preview.refused) == (1_000, 28_200, None)
    done = redeem_points(
        station, buyer, 1_000, actor="t", redemption_id="r-00000001", bill=Bill(sale.sale_id)
    )
    assert done.to_dict()["bill"] == {
        "bill_fen": 30_000,
        "bill": "300.00",
        "discount_fen": 800,
        "discount": "8.00",
        "due_fen": 29_200,
        "due": "292.00",
        "collect_fen": 28_200,
        "collect": "282.00",
    }
    retry = redeem_points(
        station, buyer, 1_000, actor="t", redemption_id="r-00000001", bill=Bill(sale.sale_id)
    )
    assert not retry.created and retry.to_dict() == {**done.to_dict()}
    after = quote_redemption(station, buyer, Bill(sale_id=sale.sale_id))
    assert (after.facts.redeemed_fen, after.due_fen) == (1_000, 28_200)
    assert verify_ledger(station) == []


def test_points_never_take_off_more_than_the_bill(station: Station) -> None:
    buyer = gold_member(station)
    small = dispensed(station, "2.00", "15.00", 1)  # 15.00 - 0.40 discount = 14.60 due
    figures = quote_redemption(station, buyer, Bill(sale_id=small.sale_id), 1_500)
    assert figures.max_points == 1_460  # a point a fen: exactly what is due
    assert figures.refused is not None and figures.refused.code == "redeem.over_bill"
    error = refused(
        "redeem.over_bill",
        redeem_points,
        station,
        buyer,
        1_500,
        actor="t",
        bill=Bill(sale_id=small.sale_id),
    )
    assert str(error) == (
        "1500 points are worth ¥15.00, more than the ¥14.60 due on this bill; at most 1460 points"
    )
    typed_bill = quote_redemption(station, buyer, Bill(amount=Decimal("50"), litres=Decimal(10)))
    assert (typed_bill.facts.discount_fen, typed_bill.due_fen) == (200, 4_800)
    refused("bill.one_source", quote_redemption, station, buyer, Bill(small.sale_id, Decimal(5)))
    refused("bill.amount", quote_redemption, station, buyer, Bill(amount=Decimal("0.001")))
    refused("bill.litres", quote_redemption, station, buyer, Bill(None, Decimal(50), Decimal(201)))


def test_cashiers_racing_on_one_bill_never_take_off_more_than_is_due(station: Station) -> None:
    buyer = gold_member(station)
    sale = dispensed(station, "2.00", "15.00", 1)  # 14.60 due
    outcomes: list[str] = []

    def cashier(n: int) -> None:
        try:
            redeem_points(
                station,
                buyer,
                500,
                actor=f"c{n}",
                redemption_id=f"race-{n:04d}",
                bill=Bill(sale.sale_id),
            )
            outcomes.append("booked")
        except ServiceError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=cashier, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["booked"] * 2 + ["redeem.over_bill"] * 6  # 5.00 + 5.00 <= 14.60
    assert quote_redemption(station, buyer, Bill(sale_id=sale.sale_id)).due_fen == 460
    assert verify_ledger(station) == []


def test_another_members_sale_is_not_this_members_bill(station: Station) -> None:
    buyer = gold_member(station)
    other = member(station, "13900139000")
    sale = dispensed(station, "20.00", "150.00", 1)
    attach_member(station, sale.sale_id, other, actor="t")
    refused("bill.other_member", quote_redemption, station, buyer, Bill(sale_id=sale.sale_id))
    reverse_sale(station, sale.sale_id, actor="m", reason="wrong pump")
    refused("sale.reversed", redeem_points, station, other, 100, actor="t", bill=Bill(sale.sale_id))


def test_the_quote_states_the_minimum_and_the_rate(station: Station) -> None:
    buyer = gold_member(station)
    figures = quote_redemption(station, buyer, None, 50)
    assert figures.refused is not None and figures.refused.code == "redeem.min_points"
    error = refused("redeem.min_points", redeem_points, station, buyer, 50, actor="t")
    assert str(error) == "at least 100 points per redemption (100 points buy 1 yuan)"
    assert dict(error.params) == dict(figures.refused.params) | {"step": 1}


# --- corrections ---------------------------------------------------------------------------


def test_an_adjustment_retried_is_booked_once(station: Station) -> None:
    buyer = member(station)
    first = adjust_member_points(
        station, buyer, 120, actor="m", reason="missed sale", adjustment_id="adj-000001"
    )
    again = adjust_member_points(
        station, buyer, 120, actor="m", reason="missed sale", adjustment_id="adj-000001"
    )
    assert first.created and not again.created
    assert again.balance_after == first.balance_after == 120
    with station.store.read() as tx:
        assert len(event_for(tx, "points.adjusted", "member_id", buyer)) == 1
    refused(
        "adjust.conflict",
        adjust_member_points,
        station,
        buyer,
        -120,
        actor="m",
        reason="x",
        adjustment_id="adj-000001",
    )
    error = refused(
        "reason.too_long", adjust_member_points, station, buyer, 5, actor="m", reason="长" * 201
    )
    assert str(error) == "a reason is at most 200 characters"
    refused("reason.required", adjust_member_points, station, buyer, 5, actor="m", reason="  ")


def test_a_reversal_is_previewed_with_its_member_and_points(station: Station) -> None:
    buyer = member(station)
    sale = pump_sale(station, 40, buyer)
    preview = reversal_preview(station, sale.sale_id)
    assert preview.to_dict()["member"] == {"member_id": buyer, "phone_masked": "138****8000"}
    assert (preview.take_back, preview.reversible) == (40, True)
    reverse_sale(station, sale.sale_id, actor="m", reason="test fill")
    assert reversal_preview(station, sale.sale_id).reversible is False
    refused("sale.not_found", reversal_preview, station, "no-such-sale")
