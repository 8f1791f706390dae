"""The cloud ledger's HTTP face: settings (`cloud.toml`), key files, the FastAPI app, `serve`.

Import the submodules directly (`cloud_sync.cloud.server.app`, `.run`, `.settings`, `.keyfiles`);
nothing here opens a database or reads a file at import time.
"""

__all__: list[str] = []
