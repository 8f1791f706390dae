"""The member's own app on the cloud: the JSON API under `/m/api/v1` and the H5 page at `/m/`.

`install_member_app` puts both into the cloud app; nothing is created at import.
"""

from .routes import install_member_app

__all__ = ["install_member_app"]
