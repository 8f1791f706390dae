"""Every error code the cloud can answer is declared once (cloud_sync/cloud/server/errors.py).

The source is scanned: a literal code in `ApiProblem(status, ...)` (routes, gate), in
`LedgerError(...)` (the ledger, answered with its catalogue status) or in the identity
core's `IdentityError(...)` must be declared, with the same status where the raise names
one. The OpenAPI document names only `Problem` bodies for refusals.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud_sync.cloud.server.errors import CATALOGUE, error_responses, status_of
from tests.error_scan import Hit, raised_in_files
from tests.error_scan import raised_codes as scan_raised_codes
from tests.error_scan import undeclared as scan_undeclared

from .sqlite_cloud import sqlite_cloud

ROOT = Path(__file__).resolve().parents[3]

RAISERS = {"ApiProblem": (1, 0), "LedgerError": (0, None), "IdentityError": (0, None)}


def raised_codes(source: str, name: str = "<source>") -> Iterator[Hit]:
    return scan_raised_codes(source, RAISERS, name)


def undeclared(found: Iterator[Hit]) -> list[str]:
    return scan_undeclared(found, CATALOGUE, "server/errors.py")


def _cloud_sources() -> Iterator[Path]:
    yield from sorted((ROOT / "cloud_sync" / "cloud" / "server").glob("*.py"))
    yield from sorted((ROOT / "cloud_sync" / "cloud" / "ledger").rglob("*.py"))
    yield from sorted((ROOT / "cloud_sync" / "cloud" / "member_app").rglob("*.py"))
    yield ROOT / "cloud_sync" / "core" / "identity.py"


def test_every_raised_code_is_declared_with_its_status() -> None:
    found = raised_in_files(_cloud_sources(), ROOT, RAISERS)
    assert len(found) > 30
    assert undeclared(iter(found)) == []


def test_an_undeclared_code_or_a_wrong_status_fails_the_scan() -> None:
    source = (
        'raise LedgerError("station.vanished", "gone")\n'
        'raise ApiProblem(422, "sequence_gap", "x")\n'
        'raise ApiProblem(409, "sequence_gap", "x")\n'
    )
    problems = undeclared(raised_codes(source))
    assert len(problems) == 2
    assert "'station.vanished' is not declared" in problems[0]
    assert "raised 422, declared 409" in problems[1]


def test_statuses_come_from_the_catalogue() -> None:
    assert status_of("sequence_gap") == 409
    assert status_of("station.unknown") == 404
    assert status_of("adjustment.decided") == 409
    assert status_of("rules.version_taken") == 409
    assert status_of("too_large") == 413
    assert status_of("unavailable") == 503
    assert status_of("no.such.code") == 422


def test_route_documentation_names_only_declared_codes() -> None:
    responses = error_responses("sequence_gap", body=True)
    assert sorted(responses) == [401, 403, 409, 413, 422, 503]
    assert "`sequence_gap`" in responses[409]["description"]


@pytest.fixture
def cloud_openapi(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with sqlite_cloud(tmp_path) as cloud:
        yield cloud.app.openapi()


def openapi_refusals(document: dict[str, Any]) -> Iterator[tuple[str, str, str, Any]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    yield path, method, status, response


def is_problem(document: dict[str, Any], schema: dict[str, Any]) -> bool:
    """`Problem`, or a model that extends it (a 409 that carries the stored record): every
    field of Problem, the same required ones, and more only beside them."""
    if schema == {"$ref": "#/components/schemas/Problem"}:
        return True
    schemas = document["components"]["schemas"]
    name = str(schema.get("$ref", "")).rpartition("/")[2]
    if name not in schemas:
        return False
    problem, found = schemas["Problem"], schemas[name]
    same_fields = all(
        found["properties"].get(key) == value for key, value in problem["properties"].items()
    )
    return same_fields and set(found.get("required", [])) == set(problem.get("required", []))


def test_a_refusal_schema_must_extend_problem() -> None:
    fields: dict[str, Any] = {"error": {"type": "string"}}
    problem = {"properties": fields, "required": ["error"]}
    schemas = {
        "Problem": problem,
        "WithRecord": {"properties": {**fields, "x": {}}, "required": ["error"]},
        "Loose": {"properties": {"error": {"type": "integer"}}, "required": ["error"]},
    }
    document = {"components": {"schemas": schemas}}
    assert is_problem(document, {"$ref": "#/components/schemas/WithRecord"})
    assert not is_problem(document, {"$ref": "#/components/schemas/Loose"})
    assert not is_problem(document, {"type": "object"})


def test_openapi_refusals_are_problems(cloud_openapi: dict[str, Any]) -> None:
    text = json.dumps(cloud_openapi["paths"])
    assert "HTTPValidationError" not in text
    for path, method, status, response in openapi_refusals(cloud_openapi):
        if path == "/healthz":
            continue
        schema = response["content"]["application/json"]["schema"]
        assert is_problem(cloud_openapi, schema), (path, method, status)
    for path, item in cloud_openapi["paths"].items():
        if path.startswith("/api/"):
            for operation in item.values():
                assert {"401", "403", "503"} <= set(operation["responses"]), path
