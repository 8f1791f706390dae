"""A station store with a million members: generated phones, plates and names, inserted in
bulk, and timed look-ups by phone and by plate (edge_accrual.py and cashier_lookup.py).

The generators produce what the station's own services would accept and store, checked
before any insert; look-ups go through `find_member`, the service the cashier page calls.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.latency import Latency
from cloud_sync.core.identity import mask_phone, normalize_phone, normalize_plate
from cloud_sync.core.privacy import blind_index, encrypt_field
from edge_agent.services.members import find_member
from edge_agent.services.station import Station
from edge_agent.store.ids import uuid7
from edge_agent.store.members import MemberRow, PlateRow

__all__ = [
    "POPULATION_PREFIX",
    "Population",
    "bench_lookups",
    "name_of",
    "phone_of",
    "plate_of",
    "populate",
    "positive_int",
]

STATION_ID = "BENCH01"

# Mainland province abbreviations (31) and authority letters, for generated plates.
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
# The bulk population uses 139 numbers; edge_accrual's accrual members 138.
POPULATION_PREFIX = "139"
MEMBER_SQL = "INSERT INTO members ({}) VALUES ({})".format(
    ", ".join(MemberRow.__dataclass_fields__),
    ", ".join("?" * len(MemberRow.__dataclass_fields__)),
)
PLATE_SQL = "INSERT INTO plates ({}) VALUES ({})".format(
    ", ".join(PlateRow.__dataclass_fields__),
    ", ".join("?" * len(PlateRow.__dataclass_fields__)),
)


@dataclass(frozen=True)
class Population:
    count: int
    phone_numbers: list[int]  # the 8 digits after the 139 prefix, member i
    plate_codes: list[int]  # see `_plate`, member i
    seconds: float
    prepare_seconds: float  # normalising, blind indexes, encryption
    insert_seconds: float  # executemany + COMMIT


def phone_of(prefix: str, number: int) -> str:
    return f"{prefix}{number:08d}"


def plate_of(code: int) -> str:
    province, rest = divmod(code, len(LETTERS) * 100_000)
    letter, digits = divmod(rest, 100_000)
    return f"{PROVINCES[province]}{LETTERS[letter]}{digits:05d}"


def name_of(index: int) -> str:
    given = GIVEN[index % len(GIVEN)]
    if index % 3:
        given += GIVEN[(index // len(GIVEN)) % len(GIVEN)]
    return SURNAMES[(index // 7) % len(SURNAMES)] + given


def _check_generated(phone_numbers: Sequence[int], plate_codes: Sequence[int]) -> None:
    """The generators must produce what the service itself would accept and store."""
    for number in phone_numbers[:20]:
        national = phone_of(POPULATION_PREFIX, number)
        if normalize_phone(national) != "+86" + national:
            raise RuntimeError(f"generated phone {national} is not a valid mainland mobile")
    for code in plate_codes[:20]:
        plate = plate_of(code)
        if normalize_plate(plate) != plate:
            raise RuntimeError(f"generated plate {plate} is not canonical")


def populate(
    station: Station, count: int, batch: int, rng: random.Random, progress: Callable[[str], None]
) -> Population:
    """Insert `count` members with one plate each, `batch` rows per store transaction."""
    phone_numbers = rng.sample(range(100_000_000), count)
    plate_codes = rng.sample(range(len(PROVINCES) * len(LETTERS) * 100_000), count)
    _check_generated(phone_numbers, plate_codes)
    keys = station.keys
    prepare_ns = insert_ns = 0
    started = time.perf_counter_ns()
    for first in range(0, count, batch):
        t0 = time.perf_counter_ns()
        now = station.now()
        at, at_ms = now.isoformat(), int(now.timestamp() * 1000)
        members: list[tuple[Any, ...]] = []
        plates: list[tuple[Any, ...]] = []
        for index in range(first, min(first + batch, count)):
            e164 = "+86" + phone_of(POPULATION_PREFIX, phone_numbers[index])
            plate = plate_of(plate_codes[index])
            member = MemberRow(
                member_id=uuid7(),
                phone_index=blind_index(keys, "phone", e164),
                phone_sealed=encrypt_field(keys, "phone", e164),
                phone_masked=mask_phone(e164),
                name_sealed=encrypt_field(keys, "name", name_of(index)),
                registered_at=at,
                registered_at_ms=at_ms,
                registered_station=STATION_ID,
                consent_at=at,
                consent_channel="counter",
                tier="standard",
                tier_since=at,
                status="active",
            )
            members.append(tuple(vars(member).values()))
            row = PlateRow(
                plate_index=blind_index(keys, "plate", plate),
                member_id=member.member_id,
                plate_sealed=encrypt_field(keys, "plate", plate),
                attached_at=at,
            )
            plates.append(tuple(vars(row).values()))
        t1 = time.perf_counter_ns()
        with station.store.write() as tx:
            tx.conn.executemany(MEMBER_SQL, members)
            tx.conn.executemany(PLATE_SQL, plates)
        t2 = time.perf_counter_ns()
        prepare_ns += t1 - t0
        insert_ns += t2 - t1
        done = first + len(members)
        elapsed = (t2 - started) / 1e9
        progress(f"  populated {done:>9,} / {count:,} members in {elapsed:7.1f} s")
    total = (time.perf_counter_ns() - started) / 1e9
    return Population(count, phone_numbers, plate_codes, total, prepare_ns / 1e9, insert_ns / 1e9)


def bench_lookups(
    station: Station,
    population: Population,
    kind: str,
    count: int,
    warmup: int,
    rng: random.Random,
) -> Latency:
    """`find_member` by phone (typed as 11 digits) or by plate, random existing members."""
    picks = [rng.randrange(population.count) for _ in range(warmup + count)]
    samples: list[int] = []
    clock = time.perf_counter_ns
    for position, index in enumerate(picks):
        national = phone_of(POPULATION_PREFIX, population.phone_numbers[index])
        plate = plate_of(population.plate_codes[index])
        if kind == "phone":
            before = clock()
            view = find_member(station, phone=national)
            spent = clock() - before
        else:
            before = clock()
            view = find_member(station, plate=plate)
            spent = clock() - before
        if view.phone_masked != mask_phone("+86" + national) or view.plates != (plate,):
            raise RuntimeError(f"look-up by {kind} found the wrong member: {view}")
        if position >= warmup:
            samples.append(spent)
    return Latency.of(samples)


def positive_int(text: str) -> int:
    value = int(text.replace("_", "").replace(",", ""))
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value
