"""`loyalpump cloud invoice list|file|issue|reject`: the 数电发票 queue on the database directly
(the same ledger functions as the console's /hq/invoices), each change audited.

`file` is the step a job (a systemd timer) or HQ runs: it hands waiting requests to the tax
platform's adapter, today the `file` adapter writing `<data_dir>/invoices/outbox/*.json`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from cloud_sync.core.output import emit, emit_table

from .commands import ConfigOption, DatabaseOption, JsonOption, _ledger, _now, _refusals

__all__ = ["invoice_app"]

invoice_app = typer.Typer(
    help="Members' e-invoice (数电发票) requests: list, file, issue, reject.",
    no_args_is_help=True,
)

IdOption = Annotated[str, typer.Option("--id", help="The request's id (request_id).")]
ByOption = Annotated[str, typer.Option("--by", help="Who at HQ acts (kept in the audit log).")]
_LIST_COLUMNS = (
    "request_id",
    "requested_at",
    "station_id",
    "buyer_kind",
    "buyer_name",
    "tax_id",
    "amount_fen",
    "status",
    "filed_at",
    "invoice_no",
)


@invoice_app.command("list")
def invoice_list(
    config: ConfigOption,
    status: Annotated[
        str | None, typer.Option("--status", help="requested, issued or rejected (default: all)")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=200, help="At most this many.")] = 50,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Invoice requests: waiting ones oldest first, the others newest first."""
    from cloud_sync.cloud.ledger.member_invoices_hq import invoice_queue  # noqa: PLC0415 - lazy

    with _refusals(), _ledger(config, database_url) as (_, ledger):
        queue = ledger.db.read(
            lambda c: invoice_queue(c, ledger.chain_keys, status=status, limit=limit)
        )
    if as_json:
        emit(queue, as_json=True)
        return
    emit_table(queue["invoices"], _LIST_COLUMNS)


@invoice_app.command("file")
def invoice_file(
    config: ConfigOption,
    by: ByOption = "cli",
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Hand waiting requests to the tax platform (one JSON file each in invoices/outbox/)."""
    from cloud_sync.cloud.ledger.member_invoices_hq import file_invoices  # noqa: PLC0415 - lazy
    from cloud_sync.cloud.ledger.tax_platform import (  # noqa: PLC0415 - lazy
        FileTaxPlatform,
        outbox_of,
    )

    with _refusals(), _ledger(config, database_url) as (settings, ledger):
        outbox = outbox_of(settings.data_dir)
        filed = file_invoices(
            ledger.db, ledger.chain_keys, FileTaxPlatform(outbox), _now(), actor=by
        )
    emit({"filed": filed, "outbox": str(outbox)}, as_json=as_json)


def _decide(
    config: ConfigOption,
    database_url: str | None,
    request_id: str,
    decision: Literal["issue", "reject"],
    *,
    by: str,
    invoice_no: str | None = None,
    reason: str | None = None,
    as_json: bool,
) -> None:
    from cloud_sync.cloud.ledger.member_invoices_hq import decide_invoice  # noqa: PLC0415 - lazy

    with _refusals(), _ledger(config, database_url) as (_, ledger):
        now = _now()
        done = ledger.db.transact(
            lambda c: decide_invoice(
                c,
                ledger.chain_keys,
                request_id=request_id,
                decision=decision,
                invoice_no=invoice_no,
                reason=reason,
                actor=by,
                now=now,
            )
        )
    keys = ("request_id", "sale_id", "status", "invoice_no", "reason", "decided_by")
    emit({k: done[k] for k in keys}, as_json=as_json)


@invoice_app.command("issue")
def invoice_issue(
    config: ConfigOption,
    request_id: IdOption,
    number: Annotated[str, typer.Option("--number", help="The issued invoice's number.")],
    by: ByOption = "cli",
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Mark a waiting request issued, with the invoice's number (audited)."""
    _decide(config, database_url, request_id, "issue", by=by, invoice_no=number, as_json=as_json)


@invoice_app.command("reject")
def invoice_reject(
    config: ConfigOption,
    request_id: IdOption,
    reason: Annotated[str, typer.Option("--reason", help="Why (the member sees it).")],
    by: ByOption = "cli",
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reject a waiting request with a reason (audited)."""
    _decide(config, database_url, request_id, "reject", by=by, reason=reason, as_json=as_json)
