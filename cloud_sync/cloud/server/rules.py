"""Publishing a rule set: validate, sign the exact text, hand it to the ledger.

Shared by `POST /api/v1/rulesets` and `loyalpump cloud rules publish`, so a document HQ
publishes through either door is checked and signed the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.cloud.ledger.drafts import document_hash, draft_row
from cloud_sync.cloud.ledger.drafts import publish_draft as drafts_publish
from cloud_sync.core.ruleset import Fault, RuleSetError
from cloud_sync.core.ruleset.parser import parse_ruleset_json
from cloud_sync.core.signing import key_id_of, public_key_b64, sign_document

__all__ = ["Published", "publish_draft", "publish_ruleset"]


@dataclass(frozen=True)
class Published:
    version: int
    signing_key_id: str

    def to_dict(self) -> dict[str, int | str]:
        return {"version": self.version, "signing_key_id": self.signing_key_id}


def _text_of(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")  # a BOM is not part of the document
    except UnicodeDecodeError as exc:
        raise RuleSetError([Fault("$", f"is not UTF-8 text (byte {exc.start})")]) from exc


def publish_ruleset(
    ledger: CloudLedger, signing_key: Ed25519PrivateKey, raw: bytes, now: datetime
) -> Published:
    """Raise RuleSetError (every fault with its JSON path) or the ledger's LedgerError."""
    document = _text_of(raw)
    parse_ruleset_json(document)
    signing_key_id = key_id_of(public_key_b64(signing_key))
    signature = sign_document(signing_key, document)
    version = ledger.publish_ruleset(document, signature, signing_key_id, now)
    return Published(version=version, signing_key_id=signing_key_id)


def publish_draft(
    ledger: CloudLedger, signing_key: Ed25519PrivateKey, draft_id: str, by: str, now: datetime
) -> dict[str, Any]:
    """Sign an approved draft's exact text and publish it (ledger.drafts checks the
    approval, the backtest and that the text signed is still the draft's)."""
    draft = ledger.db.read(lambda conn: draft_row(conn, draft_id))
    document: str = draft["document"]
    parse_ruleset_json(document)
    signing_key_id = key_id_of(public_key_b64(signing_key))
    signature = sign_document(signing_key, document)
    return ledger.db.transact(
        lambda conn: drafts_publish(
            ledger.db,
            conn,
            draft_id=draft_id,
            by=by,
            signature=signature,
            signing_key_id=signing_key_id,
            signed_hash=document_hash(document),
            now=now,
        )
    )
