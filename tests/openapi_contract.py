"""Schemathesis (every check) against an in-process ASGI app: the OpenAPI must tell the truth.

Each operation gets a bounded, derandomized run (positive and negative data); every
failure of every operation is collected, so one run reports them all. The checks are
schemathesis's own (no server error, response schema and status conformance, content
type, auth ignored, …) with one setting: `positive_data_acceptance` also accepts 422,
because 422 is the documented answer to a request the schema cannot judge (a phone
number with letters, a rule set whose dates clash, phone and plate together), and 429,
the documented answer of a login once its limiter has counted enough wrong tries (a
run sends more than a person may).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Err

__all__ = ["run_contract"]

CONFIG = {
    "checks": {
        "positive_data_acceptance": {
            "expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429"],
        },
    },
}


def _exercise(operation: Any, max_examples: int) -> Callable[[], None]:
    @settings(
        max_examples=max_examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    @given(case=st.one_of(*(operation.as_strategy(mode) for mode in GenerationMode)))
    def exercise(case: Any) -> None:
        case.call_and_validate()

    return exercise


def run_contract(
    app: Any,
    openapi_path: str,
    auth: Mapping[str, Mapping[str, str]],
    *,
    max_examples: int = 25,
    skip: frozenset[str] = frozenset(),
    base_url: str | None = None,
    load_headers: Mapping[str, str] | None = None,
) -> tuple[list[str], list[str]]:
    """(operations tested, failures). `auth` gives each security scheme of the document
    its credentials (schemathesis's `auth.openapi` config), so its own auth checks see them.
    """
    settings_: dict[str, Any] = {**CONFIG, "auth": {"openapi": dict(auth)}} if auth else CONFIG
    if base_url is not None:
        settings_ = {**settings_, "base-url": base_url}
    config = SchemathesisConfig.from_dict(settings_)
    load = {"headers": dict(load_headers)} if load_headers else {}
    schema = schemathesis.openapi.from_asgi(openapi_path, app, config=config, **load)
    tested: list[str] = []
    failures: list[str] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"the document does not load: {result.err()}")
            continue
        operation = result.ok()
        if operation.label in skip:
            continue
        exercise = _exercise(operation, max_examples)
        tested.append(operation.label)
        try:
            exercise()
        except (Exception, BaseExceptionGroup) as exc:  # a group of check failures
            failures.append(f"{operation.label}: {exc}")
    return tested, failures
