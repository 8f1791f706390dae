"""The station edge agent: settings, the SQLite store, services, the CLI and the daemon."""
