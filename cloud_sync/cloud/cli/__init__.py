"""`loyalpump cloud …`: the ledger service and HQ's verbs on its database."""

from . import drafts as _drafts  # noqa: F401 - registers `rules draft|drafts|backtest|approve`
from . import members as _members  # noqa: F401 - registers member export|erase|import
from . import station_location as _station_location  # noqa: F401 - registers station locate
from .commands import cloud_app
from .db import db_app
from .invoices import invoice_app
from .reports import aggregates_app, report_app
from .review import review_app
from .users import user_app

cloud_app.add_typer(review_app, name="review")
cloud_app.add_typer(user_app, name="user")
cloud_app.add_typer(report_app, name="report")
cloud_app.add_typer(aggregates_app, name="aggregates")
cloud_app.add_typer(invoice_app, name="invoice")
cloud_app.add_typer(db_app, name="db")

__all__ = ["cloud_app"]
