"""`loyalpump cloud station revoke` as HQ runs it: a real process on a SQLite ledger (the CLI
opens whatever `--database-url` names; the ledger code is the one tested on both backends)."""

from __future__ import annotations

import json
from pathlib import Path

from cloud_sync.cloud.ledger.audit import audit_entries
from cloud_sync.cloud.server.run import open_ledger
from cloud_sync.cloud.server.settings import load_cloud_settings
from tests.cloud.server.test_cli import config, run  # noqa: F401 - the shared fixture


def test_station_revoke_stops_the_token_and_is_audited_as_cli(
    config: Path,  # noqa: F811 - the fixture imported above
) -> None:
    token = json.loads(run("station", "add", "-c", str(config), "--id", "S001", "--json").stdout)[
        "token"
    ]
    revoked = json.loads(
        run("station", "revoke", "-c", str(config), "--id", "S001", "--json").stdout
    )
    assert revoked["station_id"] == "S001" and revoked["revoked_at"]
    again = run("station", "revoke", "-c", str(config), "--id", "S001", check=False)
    assert again.returncode == 2 and "revoked already" in again.stderr
    unknown = run("station", "revoke", "-c", str(config), "--id", "S404", check=False)
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1
    ledger = open_ledger(load_cloud_settings(config))
    try:
        assert ledger.station_for_token(token) is None
        entries = ledger.db.read(lambda conn: audit_entries(conn, target="S001"))
        assert [(e["actor"], e["action"]) for e in entries] == [("cli", "station.revoke")]
        assert token not in repr(entries)
        assert ledger.stations()[0]["revoked_at"] == revoked["revoked_at"]
    finally:
        ledger.close()
