"""`loyalpump cloud …`: the ledger service and HQ's verbs on its database."""

from . import members as _members  # noqa: F401 - registers member export|erase|import
from .commands import cloud_app
from .review import review_app

cloud_app.add_typer(review_app, name="review")

__all__ = ["cloud_app"]
