"""The cashier page: FastAPI + Jinja2 + htmx, served by the station agent (see `app.build_app`)."""
