"""The simulated FDC's sales book and its line noise (see `simulator`).

Kept apart from the TCP server so the sale arithmetic and the damage recipes can be read
and tested on their own. Two seeded random streams: one for sales, one for noise, so
turning noise on does not change which sales are made.
"""

from __future__ import annotations

import dataclasses
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from .fdcside import BILLION_LAUGHS, EXTERNAL_ENTITY, SaleRecord
from .framer import IfsfFramer

__all__ = ["DEFAULT_PRODUCTS", "NOISE_KINDS", "SaleBook", "SimProduct", "damage"]

NOISE_KINDS = (
    "garbage",  # random bytes before a frame
    "truncated",  # a cut-short copy before the real frame
    "malformed",  # a well-framed message that is not XML
    "hostile",  # a DOCTYPE entity bomb or external entity
    "huge_length",  # a header announcing ~2 GB before the real frame
    "bad_digest",  # the real frame lost: bad MD5 (plain headers: cut short)
    "drop",  # the connection dropped instead of sending the frame
)


@dataclass(frozen=True)
class SimProduct:
    number: int
    grade: str  # the grade code a station's products map would give it
    name: str
    unit_price: Decimal


DEFAULT_PRODUCTS = (
    SimProduct(1, "92", "92#汽油", Decimal("7.50")),
    SimProduct(2, "95", "95#汽油", Decimal("8.02")),
    SimProduct(3, "0", "0#柴油", Decimal("7.21")),
)

_CENT = Decimal("0.01")


class SaleBook:
    """Makes sales, numbers them, keeps the FDC's buffer and the ground truth."""

    def __init__(
        self,
        *,
        pumps: int,
        products: Sequence[SimProduct],
        seed: int,
        seq_modulus: int,
        buffer_size: int,
        zone: ZoneInfo,
        timestamps: str,
        till: float,
        clock: Callable[[], datetime],
    ) -> None:
        if pumps < 1 or not products or seq_modulus < 2 or buffer_size < 1:
            raise ValueError("need pumps >= 1, products, seq_modulus >= 2, buffer_size >= 1")
        if timestamps not in ("naive", "offset", "mixed"):
            raise ValueError("timestamps must be naive, offset or mixed")
        self.pumps = pumps
        self.products = tuple(products)
        self.seq_modulus = seq_modulus
        self.zone = zone
        self.timestamps = timestamps
        self.till = till
        self.clock = clock
        self.rng = random.Random(seed)  # noqa: S311 - simulation, not security
        self.noise_rng = random.Random(seed * 7919 + 1)  # noqa: S311
        self.truth: list[dict[str, str]] = []
        self._buffer: deque[SaleRecord] = deque(maxlen=buffer_size)
        self._count = 0
        self._last_end: dict[int, datetime] = {}

    def new_sale(
        self,
        fuelling_point: int | None = None,
        nozzle: int | None = None,
        product_no: int | None = None,
        volume: str | None = None,
    ) -> tuple[SaleRecord, dict[str, str]]:
        rng = self.rng
        point = fuelling_point if fuelling_point is not None else rng.randint(1, self.pumps)
        if product_no is not None:
            product = next(p for p in self.products if p.number == product_no)
        elif nozzle is not None:
            product = self.products[(nozzle - 1) % len(self.products)]
        else:
            product = rng.choice(self.products)
        if nozzle is None:
            nozzle = self.products.index(product) + 1
        litres = Decimal(volume) if volume is not None else Decimal(rng.randint(200, 6000)) / 100
        amount = (litres * product.unit_price).quantize(_CENT, rounding=ROUND_HALF_UP)
        now = self.clock().astimezone(self.zone).replace(microsecond=0)
        previous = self._last_end.get(point)
        end = now if previous is None or now > previous else previous + timedelta(seconds=1)
        self._last_end[point] = end
        start = end - timedelta(seconds=rng.randint(20, 180))
        self._count += 1
        seq = str(self._count % self.seq_modulus)
        with_offset = self.timestamps == "offset" or (
            self.timestamps == "mixed" and rng.random() < 0.5
        )
        record = SaleRecord(
            fuelling_point=point,
            nozzle=nozzle,
            product_no=product.number,
            product_name=product.name,
            volume=str(litres),
            amount=str(amount),
            unit_price=str(product.unit_price),
            seq=seq,
            start_timestamp=self._format(start, with_offset),
            end_timestamp=self._format(end, with_offset),
        )
        for old in [r for r in self._buffer if (r.fuelling_point, r.seq) == (point, seq)]:
            self._buffer.remove(old)  # the FDC overwrites a transaction whose number wrapped
        self._buffer.append(record)
        truth = {
            "fuelling_point": str(point),
            "nozzle": str(nozzle),
            "product_no": str(product.number),
            "grade": product.grade,
            "product_name": product.name,
            "volume": record.volume,
            "amount": record.amount,
            "unit_price": record.unit_price,
            "seq": seq,
            "start_timestamp": record.start_timestamp,
            "end_timestamp": record.end_timestamp,
        }
        self.truth.append(truth)
        return record, truth

    def till_follow_ups(self, record: SaleRecord) -> list[SaleRecord]:
        """With probability `till`, a till locks then clears the sale (same identity)."""
        if self.till <= 0 or self.rng.random() >= self.till:
            return []
        locked = dataclasses.replace(record, state="Locked")
        cleared = dataclasses.replace(record, state="Cleared")
        if record in self._buffer:
            self._buffer[self._buffer.index(record)] = cleared
        return [locked, cleared]

    def listing(self) -> list[tuple[int, str]]:
        return [(record.fuelling_point, record.seq) for record in self._buffer]

    def find(self, device_id: str | None, seq: str | None) -> SaleRecord | None:
        for record in reversed(self._buffer):
            if (
                str(record.fuelling_point) == (device_id or "").strip()
                and record.seq == (seq or "").strip()
            ):
                return record
        return None

    @staticmethod
    def _format(moment: datetime, with_offset: bool) -> str:
        if with_offset:
            return moment.isoformat(timespec="seconds")
        return moment.strftime("%Y-%m-%dT%H:%M:%S")


def damage(kind: str, xml: bytes, frame: bytes, framer: IfsfFramer, rng: random.Random) -> bytes:
    """The bytes to send instead of `frame` (which carries `xml`) for one kind of noise."""
    header = frame[: len(frame) - len(xml)]
    if kind == "garbage":
        out = rng.randbytes(rng.randint(1, 48)) + frame
    elif kind == "truncated":
        out = header + xml[: rng.randint(1, len(xml) - 1)] + frame
    elif kind == "malformed":
        out = framer.encode(b'<FDCMessage MessageType="FuelSaleTrx"><FDCdata>') + frame
    elif kind == "hostile":
        out = framer.encode(rng.choice((BILLION_LAUGHS, EXTERNAL_ENTITY))) + frame
    elif kind == "huge_length":
        out = (0x7FFFFFF0).to_bytes(4, "big") + header[4:] + frame
    elif kind == "bad_digest" and len(header) == 6:
        out = framer.encode(xml[: len(xml) // 2])  # plain: no digest, so it arrives cut short
    elif kind == "bad_digest":
        at = len(header) - 1 - rng.randrange(16)
        out = frame[:at] + bytes([frame[at] ^ rng.randint(1, 255)]) + frame[at + 1 :]
    else:
        raise ValueError(f"unknown noise kind {kind!r}")
    return out
