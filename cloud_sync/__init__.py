"""The wire contract, the station-side sync engine and the cloud ledger service.

`cloud_sync.loyalty` holds the pure loyalty core (rule engine, identity, privacy
primitives, points lots) shared by the station and the cloud, so that both compute the
same answer without `cloud_sync` ever importing `edge_agent`.
"""
