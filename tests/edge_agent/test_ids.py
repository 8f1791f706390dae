"""UUIDv7 ids: the right version bits, and strictly increasing within a process."""

from __future__ import annotations

import uuid

from edge_agent.store.ids import uuid7


def test_ids_are_version_7_rfc_variant() -> None:
    value = uuid.UUID(uuid7())
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_ids_increase_within_one_millisecond_and_when_the_clock_steps_back() -> None:
    ids = [uuid7(now_ms=1_700_000_000_000) for _ in range(5000)]
    ids += [uuid7(now_ms=1_600_000_000_000) for _ in range(10)]  # clock stepped back
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
