"""Installing rule sets at the station."""

from __future__ import annotations

import json
from decimal import Decimal

from cloud_sync.core.ruleset import (
    RuleSet,
    RuleSetError,
    ruleset_in_force,
)
from cloud_sync.core.ruleset.parser import parse_ruleset_json

from ..errors import ServiceError
from ..store import Tx
from ..store.audit import record_audit
from ..store.rulesets import RuleSetRow, get_ruleset, insert_ruleset
from ..store.sync import get_sync_state
from .station import Station

__all__ = ["install_ruleset", "install_ruleset_in", "ruleset_now"]


def _same_document(stored: str, text: str | bytes) -> bool:
    def load(raw: str | bytes) -> object:
        return json.loads(raw, parse_float=Decimal)

    return load(stored) == load(text)


def install_ruleset(
    station: Station,
    text: str | bytes,
    *,
    actor: str,
    source: str = "local",
    signature: str | None = None,
) -> tuple[RuleSet, bool]:
    """Validate and store a rule set; (rule set, False) when this exact version is installed.

    A different document under an installed version number is refused: versions are
    immutable, or two stations could price the same sale differently under "version 3".
    """
    with station.store.write() as tx:
        if source == "local" and get_sync_state(tx).enrolled:
            raise ServiceError(
                "rules.cloud_managed",
                "this station takes its rules from the cloud; publish with "
                "`loyalpump cloud rules publish` instead",
            )
        return install_ruleset_in(
            tx, text, actor=actor, at=station.now().isoformat(), source=source, signature=signature
        )


def install_ruleset_in(
    tx: Tx,
    text: str | bytes,
    *,
    actor: str,
    at: str,
    source: str = "local",
    signature: str | None = None,
) -> tuple[RuleSet, bool]:
    """`install_ruleset` inside the caller's transaction (a pulled page installs its rule
    sets together with everything else it carries)."""
    try:
        ruleset = parse_ruleset_json(text)
    except RuleSetError as exc:
        raise ServiceError("rules.invalid", str(exc)) from exc
    document = text.decode("utf-8") if isinstance(text, bytes) else text
    installed = get_ruleset(tx, ruleset.version)
    if installed is not None:
        if not _same_document(installed.document, document):
            raise ServiceError(
                "rules.version_taken",
                f"rule set version {ruleset.version} is already installed with other "
                "content; publish a new version number",
            )
        return ruleset, False
    insert_ruleset(
        tx,
        RuleSetRow(
            ruleset.version,
            ruleset.name,
            ruleset.effective_from.isoformat(),
            document,
            signature,
            source,
            at,
        ),
    )
    record_audit(
        tx,
        at=at,
        actor=actor,
        action="rules.installed",
        subject=f"ruleset:{ruleset.version}",
        details={
            "name": ruleset.name,
            "effective_from": ruleset.effective_from.isoformat(),
            "source": source,
        },
    )
    return ruleset, True


def ruleset_now(station: Station) -> RuleSet | None:
    with station.store.read() as tx:
        return ruleset_in_force(station.rulesets(tx), station.now())
