"""What the station and the cloud share, and each side of sync.

- `cloud_sync.core`: runs on both ends, pure (no clock, no I/O): the wire contract and one
  typed model per sync event, the rule engine (rule sets, pricing, tiers, lots), identity
  (phones, plates), privacy primitives, signatures, backoff, CLI output.
- `cloud_sync.station`: runs at the station: the HTTP client and the sync engine that pushes
  the outbox and pulls changes through a port the station implements.
- `cloud_sync.cloud`: runs in the cloud: the chain ledger (SQLAlchemy on SQLite or
  PostgreSQL), its HTTP service and its command line (`loyalpump cloud …`).

`cloud_sync` never imports `edge_agent`; `core` imports neither side.
"""
